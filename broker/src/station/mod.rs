//! Stations: named, durable, append-only logs.
//!
//! - [`name`]: the naming rule, checked once into [`StationName`].
//! - [`settings`]: retention, idempotency window, message size limit.
//! - [`message`]: messages as the core sees them.
//! - [`log`]: how a station's messages sit in its sled tree.
//! - [`packing`]: how a record of messages is encoded as one sled value.
//! - [`actor`]: [`StationActor`], the single writer of a station.
//! - [`retention`]: removing the oldest messages, run by the actor.
//! - [`dead_letters`]: messages the station's schema refused.
//! - [`positions`]: how far each named consumer got.
//! - [`work_queues`]: the figures of consumers shared by workers.

pub mod actor;
pub mod dead_letters;
pub mod log;
pub mod message;
pub mod name;
pub mod packing;
pub mod positions;
pub mod retention;
pub mod settings;
pub mod work_queues;

use std::sync::Arc;

use actix::Addr;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::schema::Attachment;

pub use actor::StationActor;
pub use dead_letters::DeadLetters;
pub use log::{ReadBatch, ReadLimits, StationLog};
pub use message::{Message, NewMessage, ProduceOutcome, RejectReason};
pub use name::StationName;
pub use positions::{ConsumerName, Positions};
pub use settings::{SettingsChange, StationSettings};
pub use work_queues::{QueueStats, WorkQueues};

/// Everything needed to use a station: its actor for writes, its log and
/// durable head for reads. Cheap to clone.
#[derive(Clone)]
pub struct StationHandle {
    pub name: StationName,
    pub actor: Addr<StationActor>,
    pub log: StationLog,
    /// The offset below which every message is durable; readers never look
    /// past it, and wait on it for new messages. Closed when the station is
    /// deleted.
    pub durable_head: watch::Receiver<u64>,
    /// The schema new messages are validated against; changed by the
    /// registry, read on every produce.
    pub schema: Arc<RwLock<Option<Attachment>>>,
    /// Its description and last change; changed by the registry.
    pub meta: Arc<RwLock<StationMeta>>,
    pub dead_letters: DeadLetters,
    /// Its consumers shared by workers, as its actor last published them.
    pub work_queues: WorkQueues,
}

/// What a station's definition says for people, beyond its settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationMeta {
    /// Free text (the webhook seed's topic "name").
    pub description: String,
    /// When the settings or description last changed (ms since the epoch).
    pub updated_at_ms: u64,
}

impl StationMeta {
    /// Longest description accepted, in characters.
    pub const MAX_DESCRIPTION_CHARS: usize = 1000;

    /// Refuses a description longer than [`Self::MAX_DESCRIPTION_CHARS`].
    pub fn check_description(description: &str) -> crate::BrokerResult<()> {
        let chars = description.chars().count();
        if chars > Self::MAX_DESCRIPTION_CHARS {
            return Err(crate::BrokerError::bad_request(format!(
                "a station description has at most {} characters, not {chars}",
                Self::MAX_DESCRIPTION_CHARS
            )));
        }
        Ok(())
    }
}

impl StationHandle {
    /// Reads durable messages from `from` on; also returns the durable
    /// head the read stopped at.
    pub fn read(
        &self,
        from: u64,
        limits: ReadLimits,
    ) -> crate::error::BrokerResult<(ReadBatch, u64)> {
        let head = *self.durable_head.borrow();
        Ok((self.log.read(from, head, limits)?, head))
    }
}
