//! Purging a station: an operator removes every message below an offset
//! (by default every stored one), while the station keeps its name,
//! settings, offsets (never reused), consumers and subscriptions. Readers
//! behind the cut go on at the oldest message left, as after retention.
//!
//! The removal is retention's own: a purge raises the mark below which
//! retention's passes remove everything, so a large purge runs in the
//! same bounded passes, with produces and other stations' work in
//! between. The purge is answered once its last pass is on disk.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::StationActor;
use crate::error::{BrokerError, BrokerResult};

/// Removes the station's messages below `before` (`None`: every message
/// stored when the purge arrives; messages beyond the durable head are
/// never purged, their producers not yet answered).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Purge {
    pub before: Option<u64>,
    pub reply: oneshot::Sender<BrokerResult<Purged>>,
}

/// What a purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Messages removed since the purge arrived (retention's share
    /// included, should a pass of its own run in between).
    pub removed: u64,
    /// The oldest offset left (the next offset when none is).
    pub first_offset: u64,
}

/// A purge waiting for the passes to reach its cut.
pub(super) struct PendingPurge {
    first_offset_before: u64,
    reply: oneshot::Sender<BrokerResult<Purged>>,
}

impl StationActor {
    /// Answers every waiting purge once the pass that has just finished
    /// (removing all that was due, so every purge's cut is reached) is
    /// durable; with `failure`, they fail with it instead.
    pub(super) fn answer_purges(&mut self, failure: Option<&BrokerError>) {
        self.purge_before = 0;
        let done = std::mem::take(&mut self.purges);
        if done.is_empty() {
            return;
        }
        let first_offset = self.counters.first_offset;
        let station = self.name.to_string();
        let answer_all = move |outcome: Result<(), String>| {
            for purge in done {
                let answer = match &outcome {
                    Ok(()) => Ok(Purged {
                        removed: first_offset.saturating_sub(purge.first_offset_before),
                        first_offset,
                    }),
                    Err(reason) => Err(BrokerError::PurgeFailed {
                        station: station.clone(),
                        reason: reason.clone(),
                    }),
                };
                let _ = purge.reply.send(answer);
            }
        };
        match failure {
            Some(error) => answer_all(Err(error.to_string())),
            None => self
                .group_commit
                .commit_then(move |outcome| answer_all(outcome.map_err(|e| e.to_string()))),
        }
    }
}

impl Handler<Purge> for StationActor {
    type Result = ();

    fn handle(&mut self, purge: Purge, ctx: &mut Self::Context) {
        if self.deleted {
            let _ = purge.reply.send(Err(self.not_found()));
            return;
        }
        let head = *self.durable_head.borrow();
        let target = purge.before.unwrap_or(head).min(head);
        self.purge_before = self.purge_before.max(target);
        self.purges.push(PendingPurge {
            first_offset_before: self.counters.first_offset,
            reply: purge.reply,
        });
        self.enforce_retention(ctx);
    }
}
