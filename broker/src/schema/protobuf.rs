//! Protobuf stations, compiled at run time: `protox` turns the schema's
//! `.proto` sources into descriptors (no `protoc`), `prost-reflect` decodes
//! payloads against the chosen message type.
//!
//! Strictness, and why:
//! - Unknown fields are refused (at any depth). A producer that sends them
//!   was built against some other schema, and storing data that no consumer
//!   of this schema can read is a silent loss. Garbage bytes also tend to
//!   decode as unknown fields, which this catches.
//! - Enum values the enum does not define are refused, for the same reason.
//! - A wrong wire type for a known field fails decoding.
//!
//! Decoding stops at the first malformed byte, so an undecodable payload
//! reports one location; unknown fields and enum values are all reported.

use std::collections::HashMap;

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use thread_local::ThreadLocal;

use crate::schema::{
    ValidationFailure,
    protobuf_enums::{EnumFields, value_kind},
    protobuf_scan::ScanPlan,
};

pub struct ProtobufSchema {
    message: MessageDescriptor,
    /// The schema's descriptors encoded, to give each thread a copy.
    pool_bytes: Vec<u8>,
    /// Each thread's own copy of `message`, which the decoder and the JSON
    /// converter use. Descriptors share their pool through a reference
    /// count that they update at nearly every field they touch; with one
    /// copy for all, two HTTP workers converting JSON at once made that
    /// count's cache line bounce between the cores, and a message cost
    /// ~10 µs instead of ~1.3 µs on one worker.
    per_thread: Box<ThreadLocal<MessageDescriptor>>,
    /// The message type flattened for the fast check of binary payloads.
    scan_plan: ScanPlan,
    /// Where converted JSON can hold enum values, the one thing left to
    /// check after a conversion.
    enum_fields: EnumFields,
}

/// The schema's own files, served to the compiler by name.
struct SourceFiles(HashMap<String, String>);

impl FileResolver for SourceFiles {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

impl ProtobufSchema {
    /// Compiles every file (imports between them by file name; the
    /// well-known types are available) and finds `message_type`. Errors name
    /// the file, line and column.
    pub fn compile(files: &[(String, String)], message_type: &str) -> Result<Self, String> {
        if files.is_empty() {
            return Err("a protobuf schema needs at least one .proto file".to_owned());
        }
        if message_type.is_empty() {
            return Err("a protobuf schema needs the message type to validate against".to_owned());
        }
        let mut resolver = ChainFileResolver::new();
        resolver.add(SourceFiles(files.iter().cloned().collect()));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler
            .open_files(files.iter().map(|(name, _)| name))
            // The Debug form is the one with `file:line:column:`.
            .map_err(|e| format!("{e:?}"))?;
        let pool = compiler.descriptor_pool();
        let message = pool.get_message_by_name(message_type).ok_or_else(|| {
            let mut defined: Vec<String> = pool
                .all_messages()
                .filter(|m| !m.is_map_entry() && !m.full_name().starts_with("google.protobuf."))
                .map(|m| m.full_name().to_owned())
                .collect();
            defined.sort();
            format!(
                "message type '{message_type}' is not defined by the schema's files (they define: {})",
                defined.join(", ")
            )
        })?;
        Ok(Self {
            scan_plan: ScanPlan::of(&message),
            enum_fields: EnumFields::of(&message),
            pool_bytes: message.parent_pool().encode_to_vec(),
            per_thread: Box::default(),
            message,
        })
    }

    pub fn message_type(&self) -> &str {
        self.message.full_name()
    }

    pub fn descriptor(&self) -> &MessageDescriptor {
        &self.message
    }

    /// This thread's copy of the message type (see `per_thread`).
    fn descriptor_here(&self) -> MessageDescriptor {
        self.per_thread
            .get_or(|| {
                DescriptorPool::decode(&self.pool_bytes[..])
                    .ok()
                    .and_then(|pool| pool.get_message_by_name(self.message.full_name()))
                    // A pool decodes from its own encoding; should it not,
                    // the shared descriptor still gives the same answers.
                    .unwrap_or_else(|| self.message.clone())
            })
            .clone()
    }

    /// Checks a binary (`application/x-protobuf`) payload.
    pub fn validate_binary(&self, payload: &[u8]) -> Result<(), ValidationFailure> {
        if self.scan_plan.certainly_valid(payload) {
            return Ok(());
        }
        let message = DynamicMessage::decode(self.descriptor_here(), payload).map_err(|e| {
            ValidationFailure::single(format!(
                "the payload does not decode as {}: {e}",
                self.message_type()
            ))
        })?;
        self.check_strictly(&message)
    }

    /// Converts a JSON payload (proto3 JSON mapping) to the binary form that
    /// is stored; the error names the JSON path that failed.
    pub fn convert_json(&self, payload: &[u8]) -> Result<Vec<u8>, ValidationFailure> {
        // Fast path: most payloads convert. Only a failure pays for tracking
        // the JSON path, by converting again.
        let descriptor = self.descriptor_here();
        let mut json = serde_json::Deserializer::from_slice(payload);
        if let Ok(message) = DynamicMessage::deserialize(descriptor.clone(), &mut json)
            && json.end().is_ok()
        {
            // The deserializer refuses unknown fields: only enum values can
            // be wrong, and the full walk runs only to name where.
            if !self.enum_fields.all_defined(&message) {
                self.check_strictly(&message)?;
            }
            return Ok(encode(&message, payload.len()));
        }
        let mut json = serde_json::Deserializer::from_slice(payload);
        let mut track = serde_path_to_error::Track::new();
        let converted = DynamicMessage::deserialize(
            descriptor,
            serde_path_to_error::Deserializer::new(&mut json, &mut track),
        )
        .and_then(|message| json.end().map(|()| message));
        let message = converted.map_err(|e| {
            let path = track.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ValidationFailure::single(format!(
                "'{path}': the JSON payload does not convert to {}: {e}",
                self.message_type()
            ))
        })?;
        self.check_strictly(&message)?;
        Ok(encode(&message, payload.len()))
    }

    /// Refuses unknown fields and undefined enum values at any depth,
    /// naming every one.
    fn check_strictly(&self, message: &DynamicMessage) -> Result<(), ValidationFailure> {
        // Valid messages, the common case, are checked without building paths.
        if no_unknown_fields(message) && self.enum_fields.all_defined(message) {
            return Ok(());
        }
        let mut failure = ValidationFailure::new();
        walk(message, "", &mut failure);
        if failure.is_empty() {
            Ok(())
        } else {
            Err(failure)
        }
    }
}

/// Encodes without `encode_to_vec`'s first pass to size the buffer: the
/// JSON it came from is a generous upper bound.
fn encode(message: &DynamicMessage, json_bytes: usize) -> Vec<u8> {
    let mut buffer = Vec::with_capacity(json_bytes);
    prost::Message::encode_raw(message, &mut buffer);
    buffer
}

/// Whether a message has no unknown field, at any depth.
fn no_unknown_fields(message: &DynamicMessage) -> bool {
    message.unknown_fields().next().is_none()
        && message.fields().all(|(_, value)| match value {
            Value::List(items) => items.iter().all(value_has_no_unknown_fields),
            Value::Map(entries) => entries.values().all(value_has_no_unknown_fields),
            value => value_has_no_unknown_fields(value),
        })
}

fn value_has_no_unknown_fields(value: &Value) -> bool {
    match value {
        Value::Message(inner) => no_unknown_fields(inner),
        _ => true,
    }
}

/// The enum a field (or a map field's values) holds, if any.
fn enum_of(field: &FieldDescriptor) -> Option<prost_reflect::EnumDescriptor> {
    match value_kind(field) {
        Kind::Enum(enumeration) => Some(enumeration),
        _ => None,
    }
}

/// Reports unknown fields and undefined enum values, with their field path
/// (`address.lines[2]`, `labels["k"]`).
fn walk(message: &DynamicMessage, path: &str, failure: &mut ValidationFailure) {
    for unknown in message.unknown_fields() {
        let at = if path.is_empty() {
            message.descriptor().name().to_owned()
        } else {
            path.to_owned()
        };
        failure.add(format!(
            "'{at}': unknown field number {} (not in {})",
            unknown.number(),
            message.descriptor().full_name()
        ));
    }
    for (field, value) in message.fields() {
        let here = if path.is_empty() {
            field.name().to_owned()
        } else {
            format!("{path}.{}", field.name())
        };
        match value {
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_value(&field, item, &format!("{here}[{i}]"), failure);
                }
            }
            Value::Map(entries) => {
                for (key, item) in entries {
                    check_value(&field, item, &format!("{here}[{}]", key_text(key)), failure);
                }
            }
            value => check_value(&field, value, &here, failure),
        }
    }
}

/// A map key as it reads in a path: `["k"]` for strings, `[7]` or `[true]`
/// for the rest.
fn key_text(key: &MapKey) -> String {
    match key {
        MapKey::String(text) => format!("{text:?}"),
        MapKey::Bool(value) => value.to_string(),
        MapKey::I32(value) => value.to_string(),
        MapKey::I64(value) => value.to_string(),
        MapKey::U32(value) => value.to_string(),
        MapKey::U64(value) => value.to_string(),
    }
}

fn check_value(
    field: &FieldDescriptor,
    value: &Value,
    path: &str,
    failure: &mut ValidationFailure,
) {
    match value {
        Value::Message(inner) => walk(inner, path, failure),
        Value::EnumNumber(number) => {
            if let Some(enumeration) = enum_of(field)
                && enumeration.get_value(*number).is_none()
            {
                failure.add(format!(
                    "'{path}': {number} is not a value of enum {}",
                    enumeration.full_name()
                ));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"
        syntax = "proto3";
        package t;
        enum Kind { KIND_UNSPECIFIED = 0; CLICK = 1; }
        message Event { string id = 1; Kind kind = 2; repeated int32 values = 3; }
    "#;

    #[test]
    fn every_thread_converts_and_checks_alike_with_its_own_descriptors() {
        let schema = std::sync::Arc::new(
            ProtobufSchema::compile(&[("t.proto".into(), PROTO.into())], "t.Event").unwrap(),
        );
        let valid = br#"{"id":"e","kind":"CLICK","values":[1,2]}"#;
        let expected = schema.convert_json(valid).unwrap();
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let schema = schema.clone();
                std::thread::spawn(move || {
                    let converted = schema.convert_json(valid).unwrap();
                    let refused = schema.convert_json(br#"{"kind":5}"#).unwrap_err();
                    let decoded = schema.validate_binary(&converted);
                    (converted, refused.to_string(), decoded.is_ok())
                })
            })
            .collect();
        for thread in threads {
            let (converted, refused, decoded) = thread.join().unwrap();
            assert_eq!(converted, expected);
            assert!(
                refused.contains("'kind': 5 is not a value of enum t.Kind"),
                "{refused}"
            );
            assert!(decoded);
        }
        assert!(
            schema.per_thread.iter().count() >= 2,
            "the threads made their own copies"
        );
    }
}
