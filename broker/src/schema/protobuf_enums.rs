//! [`EnumFields`]: where a message type's values can hold enum values.
//!
//! Depot refuses enum values the enum does not define (see `protobuf`).
//! Which fields can lead to one depends on the schema alone, so it is worked
//! out once per compiled schema, and a check looks at those fields only.
//! That matters for JSON converted to protobuf: the deserializer already
//! refuses unknown fields, so enum values are all that is left to check, and
//! walking every set field of every message for them took a tenth of the
//! embedded proxy's CPU converting the benchmark's 10-field events (one enum
//! field). Binary payloads that the fast scan does not pass are walked for
//! unknown fields anyway, and checked here for enum values too.

use std::collections::{HashMap, HashSet};

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

use super::protobuf_scan::defined_values;

/// For each message type (by full name) reachable from a root type whose
/// values can hold an enum value at some depth: the fields that can, as
/// plain tables (no descriptor is touched while checking, so nothing
/// shared between threads is either; see `protobuf::ProtobufSchema`). A
/// type that is not here holds no enum value at any depth.
pub struct EnumFields(HashMap<String, Vec<EnumField>>);

struct EnumField {
    number: u32,
    /// What the field's values are (a map field's: its entries' values).
    holds: Holds,
}

enum Holds {
    /// Enum values; the ones the enum defines, sorted.
    Enum(Vec<i32>),
    /// Messages of a type that can hold enum values.
    Message,
}

impl EnumFields {
    pub fn of(root: &MessageDescriptor) -> Self {
        let reachable = reachable_types(root);
        // A type holds enums if one of its fields is an enum or a message
        // type that holds enums. Recursive types make this a fixed point:
        // repeat until no type is added.
        let mut holders: HashSet<&str> = HashSet::new();
        loop {
            let before = holders.len();
            for (name, message) in &reachable {
                if !holders.contains(name.as_str())
                    && message.fields().any(|f| leads_to_enum(&f, &holders))
                {
                    holders.insert(name);
                }
            }
            if holders.len() == before {
                break;
            }
        }
        let fields = holders
            .iter()
            .map(|&name| {
                let leading = reachable[name]
                    .fields()
                    .filter_map(|field| {
                        let holds = holds(&field, &holders)?;
                        Some(EnumField {
                            number: field.number(),
                            holds,
                        })
                    })
                    .collect();
                (name.to_owned(), leading)
            })
            .collect();
        Self(fields)
    }

    /// Whether every enum value in `message`, at any depth, is one its enum
    /// defines. Unset fields hold their default, which always is one (the
    /// first value of an enum, zero in proto3).
    pub fn all_defined(&self, message: &DynamicMessage) -> bool {
        let Some(fields) = self.0.get(message.descriptor().full_name()) else {
            return true;
        };
        fields.iter().all(|field| {
            if !message.has_field_by_number(field.number) {
                return true;
            }
            let Some(value) = message.get_field_by_number(field.number) else {
                return true;
            };
            match &*value {
                Value::List(items) => items.iter().all(|item| self.value_defined(field, item)),
                Value::Map(entries) => entries.values().all(|item| self.value_defined(field, item)),
                value => self.value_defined(field, value),
            }
        })
    }

    fn value_defined(&self, field: &EnumField, value: &Value) -> bool {
        match (value, &field.holds) {
            (Value::Message(inner), _) => self.all_defined(inner),
            (Value::EnumNumber(number), Holds::Enum(defined)) => {
                defined.binary_search(number).is_ok()
            }
            _ => true,
        }
    }
}

/// Every message type a value of `root` can contain, `root` included (map
/// entries too, whose value field may be an enum or a message).
fn reachable_types(root: &MessageDescriptor) -> HashMap<String, MessageDescriptor> {
    let mut reachable = HashMap::new();
    let mut pending = vec![root.clone()];
    while let Some(message) = pending.pop() {
        if reachable.contains_key(message.full_name()) {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(inner) = field.kind() {
                pending.push(inner);
            }
        }
        reachable.insert(message.full_name().to_owned(), message);
    }
    reachable
}

/// The kind of a field's values: a map field's are described by its
/// entries' `value` field.
pub(super) fn value_kind(field: &FieldDescriptor) -> Kind {
    match field.kind() {
        Kind::Message(entry) if field.is_map() => entry.map_entry_value_field().kind(),
        kind => kind,
    }
}

/// Whether `field`'s values are enums or messages of a type in `holders`.
fn leads_to_enum(field: &FieldDescriptor, holders: &HashSet<&str>) -> bool {
    match value_kind(field) {
        Kind::Enum(_) => true,
        Kind::Message(inner) => holders.contains(inner.full_name()),
        _ => false,
    }
}

/// What `field` holds that can lead to an enum value, if anything.
fn holds(field: &FieldDescriptor, holders: &HashSet<&str>) -> Option<Holds> {
    match value_kind(field) {
        Kind::Enum(enumeration) => Some(Holds::Enum(defined_values(&enumeration))),
        Kind::Message(inner) if holders.contains(inner.full_name()) => Some(Holds::Message),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::protobuf::ProtobufSchema;

    const PROTO: &str = r#"
        syntax = "proto3";
        package t;
        enum Colour { COLOUR_UNSPECIFIED = 0; RED = 1; }
        message Leaf { string name = 1; }
        message Paint { Colour colour = 1; }
        message Node {
            Node child = 1;
            Colour colour = 2;
            repeated Paint paints = 3;
            map<string, Colour> by_name = 4;
            map<string, Paint> paint_by_name = 5;
            Leaf leaf = 6;
            string note = 7;
            map<int32, Colour> by_number = 8;
        }
    "#;

    fn schema() -> ProtobufSchema {
        ProtobufSchema::compile(&[("t.proto".into(), PROTO.into())], "t.Node").unwrap()
    }

    #[test]
    fn only_fields_that_lead_to_an_enum_are_checked() {
        let fields = super::EnumFields::of(schema().descriptor());
        let numbers = |message: &str| -> Vec<u32> {
            let mut numbers: Vec<_> = fields.0[message].iter().map(|f| f.number).collect();
            numbers.sort();
            numbers
        };
        // child, colour, paints, by_name, paint_by_name and by_number; not
        // leaf (a Leaf holds no enum) nor note.
        assert_eq!(numbers("t.Node"), [1, 2, 3, 4, 5, 8]);
        assert_eq!(numbers("t.Paint"), [1]);
        assert!(!fields.0.contains_key("t.Leaf"));
    }

    #[test]
    fn undefined_enum_numbers_in_json_are_refused_at_any_depth() {
        let schema = schema();
        let valid = br#"{"child":{"colour":1,"paints":[{"colour":"RED"}]},
            "byName":{"a":1},"paintByName":{"b":{"colour":1}},"leaf":{"name":"x"},"note":"n"}"#;
        assert!(schema.convert_json(valid).is_ok());
        for (json, path) in [
            (&br#"{"colour":7}"#[..], "'colour': 7"),
            (
                br#"{"child":{"child":{"colour":7}}}"#,
                "'child.child.colour': 7",
            ),
            (
                br#"{"paints":[{"colour":1},{"colour":9}]}"#,
                "'paints[1].colour': 9",
            ),
            (br#"{"byName":{"a":5}}"#, "'by_name[\"a\"]': 5"),
            (br#"{"byNumber":{"3":6}}"#, "'by_number[3]': 6"),
            (
                br#"{"paintByName":{"b":{"colour":4}}}"#,
                "'paint_by_name[\"b\"].colour': 4",
            ),
        ] {
            let failure = schema.convert_json(json).unwrap_err().to_string();
            assert!(failure.contains(path), "{failure}");
        }
    }
}
