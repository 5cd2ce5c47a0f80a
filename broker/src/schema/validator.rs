//! A compiled schema version and the one question the produce path asks it:
//! may this message be stored, and in which form?

use crate::{
    schema::{JsonSchema, ProtobufSchema, SchemaType, ValidationFailure},
    station::NewMessage,
};

/// The content type protobuf payloads are stored under.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

pub enum Validator {
    Json(JsonSchema),
    Protobuf(ProtobufSchema),
}

/// One schema version, compiled once and shared by every producer.
pub struct CompiledVersion {
    pub schema: String,
    pub version: u32,
    pub validator: Validator,
}

/// What a valid message becomes.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored as sent.
    AsIs,
    /// JSON sent to a protobuf station: stored as these protobuf bytes.
    Converted(Vec<u8>),
}

impl Accepted {
    /// Puts a message in the form it is stored in.
    pub fn apply(self, message: &mut NewMessage) {
        if let Self::Converted(protobuf) = self {
            message.payload = protobuf.into();
            message.content_type = PROTOBUF_CONTENT_TYPE.to_owned();
        }
    }
}

impl Validator {
    pub fn compile(
        kind: SchemaType,
        files: &[(String, String)],
        message_type: &str,
    ) -> Result<Self, String> {
        match kind {
            SchemaType::Json => match files {
                [(_, source)] => JsonSchema::compile(source).map(Self::Json),
                _ => Err(format!(
                    "a JSON schema is exactly one file, not {}",
                    files.len()
                )),
            },
            SchemaType::Protobuf => {
                ProtobufSchema::compile(files, message_type).map(Self::Protobuf)
            }
        }
    }

    pub fn check(&self, content_type: &str, payload: &[u8]) -> Result<Accepted, ValidationFailure> {
        let media = MediaType::of(content_type);
        match self {
            Self::Json(schema) => match media {
                MediaType::Protobuf | MediaType::Text => Err(ValidationFailure::single(format!(
                    "a JSON Schema station takes JSON payloads, not {content_type}"
                ))),
                MediaType::Json | MediaType::Other => {
                    schema.validate(payload).map(|()| Accepted::AsIs)
                }
            },
            Self::Protobuf(schema) => match media {
                MediaType::Protobuf => schema.validate_binary(payload).map(|()| Accepted::AsIs),
                MediaType::Json => schema.convert_json(payload).map(Accepted::Converted),
                MediaType::Text | MediaType::Other => Err(ValidationFailure::single(format!(
                    "a protobuf station takes {PROTOBUF_CONTENT_TYPE} or application/json payloads, not '{content_type}'"
                ))),
            },
        }
    }
}

/// Whether a content type is JSON (`application/json` or a `+json` type,
/// whatever the case and parameters).
pub fn is_json(content_type: &str) -> bool {
    matches!(MediaType::of(content_type), MediaType::Json)
}

enum MediaType {
    Json,
    Protobuf,
    Text,
    Other,
}

impl MediaType {
    /// Classifies by the media type's essence (parameters such as
    /// `charset` do not matter; `+json` suffixes are JSON).
    fn of(content_type: &str) -> Self {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        // Compared without allocating: this runs for every message.
        let is = |name: &str| essence.eq_ignore_ascii_case(name);
        let has_prefix = |prefix: &str| {
            essence.len() >= prefix.len()
                && essence.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        };
        let has_suffix = |suffix: &str| {
            essence.len() >= suffix.len()
                && essence.as_bytes()[essence.len() - suffix.len()..]
                    .eq_ignore_ascii_case(suffix.as_bytes())
        };
        if is("application/json") || has_suffix("+json") {
            Self::Json
        } else if is("application/x-protobuf")
            || is("application/protobuf")
            || is("application/vnd.google.protobuf")
        {
            Self::Protobuf
        } else if has_prefix("text/") {
            Self::Text
        } else {
            Self::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_ignore_case_and_parameters() {
        assert!(matches!(
            MediaType::of("Application/JSON; charset=utf-8"),
            MediaType::Json
        ));
        assert!(matches!(
            MediaType::of("application/cloudevents+json"),
            MediaType::Json
        ));
        assert!(matches!(
            MediaType::of("application/x-protobuf"),
            MediaType::Protobuf
        ));
        assert!(matches!(MediaType::of("TEXT/plain"), MediaType::Text));
        assert!(matches!(MediaType::of(""), MediaType::Other));
        assert!(matches!(MediaType::of("text"), MediaType::Other));
    }
}
