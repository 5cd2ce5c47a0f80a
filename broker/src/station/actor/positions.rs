//! The actor's part in consumer positions ([`crate::station::positions`]):
//! it writes them, so a commit is checked against the durable head it
//! moves, and a station being deleted takes no more.

use actix::prelude::*;
use tokio::sync::oneshot;

use depot_schemas::storage::ConsumerPosition;

use super::StationActor;
use crate::{
    clock::now_ms,
    error::{BrokerError, BrokerResult},
    station::{ConsumerName, StationName},
};

/// Sets a consumer's position; `reply` gets it once it is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitPosition {
    pub consumer: ConsumerName,
    pub next_offset: u64,
    /// Who commits (kept with the position).
    pub committer: String,
    /// `--max-consumers`: a new consumer beyond it is refused.
    pub max_consumers: usize,
    pub reply: oneshot::Sender<BrokerResult<ConsumerPosition>>,
}

/// Removes a consumer's position; `reply` gets whether there was one, once
/// the removal is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeletePosition {
    pub consumer: ConsumerName,
    pub reply: oneshot::Sender<BrokerResult<bool>>,
}

impl StationActor {
    /// Checks a commit of `consumer` at `next_offset` and writes its
    /// position (not yet flushed).
    pub(super) fn write_position(
        &self,
        consumer: &ConsumerName,
        next_offset: u64,
        committer: &str,
        max_consumers: usize,
    ) -> BrokerResult<ConsumerPosition> {
        if self.deleted {
            return Err(self.not_found());
        }
        let head = *self.durable_head.borrow();
        if next_offset > head {
            return Err(BrokerError::bad_request(format!(
                "consumer {} cannot be at offset {next_offset}: station {} ends before it (its next offset is {head})",
                consumer.as_str(),
                self.name
            )));
        }
        let positions = self.log.positions();
        if positions.get(consumer)?.is_none() && positions.count() >= max_consumers {
            return Err(too_many_consumers(&self.name, max_consumers));
        }
        let position = ConsumerPosition {
            next_offset,
            updated_at_ms: now_ms(),
            updated_by: committer.to_owned(),
        };
        positions.set(consumer, &position)?;
        Ok(position)
    }
}

/// The refusal of one consumer more than `--max-consumers`.
pub(super) fn too_many_consumers(station: &StationName, max_consumers: usize) -> BrokerError {
    BrokerError::LimitReached {
        reason: format!(
            "station {station} has positions for {max_consumers} consumers, its limit (--max-consumers); delete some or raise it"
        ),
    }
}

impl Handler<CommitPosition> for StationActor {
    type Result = ();

    fn handle(&mut self, commit: CommitPosition, _: &mut Self::Context) {
        // Set by hand: what the consumer's workers hold starts afresh.
        let written = self
            .write_position(
                &commit.consumer,
                commit.next_offset,
                &commit.committer,
                commit.max_consumers,
            )
            .and_then(|position| {
                self.forget_leases(&commit.consumer)?;
                Ok(position)
            });
        self.answer_when_durable(written.map(|position| (position, true)), commit.reply);
    }
}

impl Handler<DeletePosition> for StationActor {
    type Result = ();

    fn handle(&mut self, delete: DeletePosition, _: &mut Self::Context) {
        if self.deleted {
            let _ = delete.reply.send(Err(self.not_found()));
            return;
        }
        // A work queue whose position never moved is a consumer too.
        let removed = self.forget_leases(&delete.consumer).and_then(|leased| {
            let positioned = self.log.positions().remove(&delete.consumer)?;
            Ok(leased || positioned)
        });
        self.answer_when_durable(removed.map(|removed| (removed, true)), delete.reply);
    }
}
