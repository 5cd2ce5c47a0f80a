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
    station::ConsumerName,
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
    /// Checks a commit and writes its position (not yet flushed).
    fn write_position(&self, commit: &CommitPosition) -> BrokerResult<ConsumerPosition> {
        if self.deleted {
            return Err(self.not_found());
        }
        let head = *self.durable_head.borrow();
        if commit.next_offset > head {
            return Err(BrokerError::bad_request(format!(
                "consumer {} cannot be at offset {}: station {} ends before it (its next offset is {head})",
                commit.consumer.as_str(),
                commit.next_offset,
                self.name
            )));
        }
        let positions = self.log.positions();
        if positions.get(&commit.consumer)?.is_none() && positions.count() >= commit.max_consumers {
            return Err(BrokerError::LimitReached {
                reason: format!(
                    "station {} has positions for {} consumers, its limit (--max-consumers); delete some or raise it",
                    self.name, commit.max_consumers
                ),
            });
        }
        let position = ConsumerPosition {
            next_offset: commit.next_offset,
            updated_at_ms: now_ms(),
            updated_by: commit.committer.clone(),
        };
        positions.set(&commit.consumer, &position)?;
        Ok(position)
    }
}

impl Handler<CommitPosition> for StationActor {
    type Result = ();

    fn handle(&mut self, commit: CommitPosition, _: &mut Self::Context) {
        match self.write_position(&commit) {
            Ok(position) => self.group_commit.commit_then(move |outcome| {
                let _ = commit.reply.send(outcome.map(|()| position));
            }),
            Err(error) => {
                let _ = commit.reply.send(Err(error));
            }
        }
    }
}

impl Handler<DeletePosition> for StationActor {
    type Result = ();

    fn handle(&mut self, delete: DeletePosition, _: &mut Self::Context) {
        if self.deleted {
            let _ = delete.reply.send(Err(self.not_found()));
            return;
        }
        match self.log.positions().remove(&delete.consumer) {
            Ok(removed) => self.group_commit.commit_then(move |outcome| {
                let _ = delete.reply.send(outcome.map(|()| removed));
            }),
            Err(error) => {
                let _ = delete.reply.send(Err(error));
            }
        }
    }
}
