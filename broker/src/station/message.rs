//! Messages as the broker's core sees them, independent of the wire and of
//! the on-disk encoding (both convert to and from these at their boundary).

use bytes::Bytes;

use crate::schema::ValidationFailure;

/// A message as a producer hands it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// Producer-chosen idempotency id (`msg-id`); `None` means the broker
    /// assigns a UUID v7 and does not deduplicate.
    pub msg_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub payload: Bytes,
}

/// A message as stored: what every reader gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Dense, strictly increasing per station, assigned by the broker.
    pub offset: u64,
    pub id: String,
    pub timestamp_ms: u64,
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub payload: Bytes,
    /// The user that produced it.
    pub producer: String,
}

/// What happened to one produced message. A duplicate is an expected
/// outcome, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProduceOutcome {
    Stored { offset: u64 },
    Duplicate { offset: u64 },
    Rejected { reason: RejectReason },
}

/// Why one message of a produce was refused (the others are unaffected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    TooLarge {
        size: usize,
        limit: u64,
    },
    /// The station's schema refused it (it went to the dead letters unless
    /// the station drops them).
    Invalid(ValidationFailure),
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { size, limit } => write!(
                f,
                "message of {size} bytes exceeds the station's limit of {limit} bytes"
            ),
            Self::Invalid(failure) => failure.fmt(f),
        }
    }
}
