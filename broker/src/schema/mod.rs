//! Station schemas: the contracts messages are validated against before
//! they are stored.
//!
//! - [`catalog`]: the schemas and their versions, persisted in sled, each
//!   version compiled once on first use and shared.
//! - [`validator`]: a compiled version; decides per message.
//! - [`json`], [`protobuf`]: the two kinds of schema (`protobuf_scan` is
//!   the allocation-free fast path for binary payloads).
//! - [`failure`]: the error a refused message gets.
//!
//! Validation runs on the producer's side of the station (connection and
//! HTTP worker threads), never inside a station actor, so it runs in
//! parallel across producers.

pub mod catalog;
pub mod failure;
pub mod json;
pub mod protobuf;
mod protobuf_enums;
mod protobuf_scan;
pub mod validator;

pub use catalog::{SchemaCatalog, SchemaVersionSource};
pub use failure::ValidationFailure;
pub use json::JsonSchema;
pub use protobuf::ProtobufSchema;
pub use validator::{Accepted, CompiledVersion, PROTOBUF_CONTENT_TYPE, Validator};

/// The kinds of schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    Json,
    Protobuf,
}

impl SchemaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
        }
    }
}

/// Which schema a station validates against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub schema: String,
    /// `None` follows the schema's active version.
    pub version: Option<u32>,
}
