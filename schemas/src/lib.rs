//! Depot's contracts, free of I/O.
//!
//! - [`wire`]: the broker's wire protocol, generated from
//!   `proto/depot/wire/v1/wire.proto` (the file other clients generate from).
//! - [`storage`]: the values the broker keeps in sled, generated from
//!   `proto/depot/storage/v1/storage.proto`.
//! - [`codec`]: length-prefixed framing of those messages for any byte stream.
//!
//! Nothing here opens a socket or a file; the broker and its clients own that.
//! Wire types are not domain types: the broker converts at its boundary.

pub mod codec;

/// The wire protocol, version 1 (`depot.wire.v1`).
pub mod wire {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/depot.wire.v1.rs"));
}

impl wire::ProduceOutcome {
    /// Whether this produce stored the message (not a duplicate of an
    /// earlier one, not refused): what "sent" and "produced" counts count.
    pub fn is_stored(&self) -> bool {
        matches!(
            self.outcome,
            Some(wire::produce_outcome::Outcome::Offset(_))
        )
    }
}

/// The on-disk format (`depot.storage.v1`).
pub mod storage {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/depot.storage.v1.rs"));
}

pub use codec::{DEFAULT_MAX_FRAME_BYTES, FrameCodec, FrameError};
