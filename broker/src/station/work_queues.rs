//! What a station's work queues (consumers shared by workers with leased
//! fetches) look like now: per consumer, the messages its workers hold
//! leased, the acknowledgements kept beyond its position, and how many
//! messages were handed out again or became dead letters since the broker
//! started. The station's actor, which owns the leases, publishes them after
//! each lease operation; consumer listings and metrics scrapes read them
//! without a round trip to the actor. Nothing here is on the produce path.

use std::{collections::BTreeMap, sync::Arc};

use parking_lot::Mutex;

/// One consumer's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages its workers hold leased now.
    pub leased: u64,
    /// Acknowledged beyond its position (a message before them is still
    /// leased or due again).
    pub acknowledged_ahead: u64,
    /// Messages handed out again (a lease ended or was given back).
    pub redeliveries: u64,
    /// Messages that became dead letters past the fetch's `max_deliveries`.
    pub dead_lettered: u64,
}

/// Shared by a station's actor and its handle; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct WorkQueues(Arc<Mutex<BTreeMap<String, QueueStats>>>);

impl WorkQueues {
    /// `consumer`'s figures (all zero when it is no work queue).
    pub fn get(&self, consumer: &str) -> QueueStats {
        self.0.lock().get(consumer).copied().unwrap_or_default()
    }

    /// Every work queue's figures, by consumer name.
    pub fn all(&self) -> Vec<(String, QueueStats)> {
        let queues = self.0.lock();
        queues
            .iter()
            .map(|(name, stats)| (name.clone(), *stats))
            .collect()
    }

    /// Changes `consumer`'s figures (only the station's actor does).
    pub(super) fn update(&self, consumer: &str, change: impl FnOnce(&mut QueueStats)) {
        let mut queues = self.0.lock();
        change(queues.entry(consumer.to_owned()).or_default());
    }

    /// Forgets `consumer` (its position was set or removed by hand).
    pub(super) fn remove(&self, consumer: &str) {
        self.0.lock().remove(consumer);
    }
}
