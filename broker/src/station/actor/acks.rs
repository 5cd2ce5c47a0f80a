//! Acknowledgements of a work queue's workers ([`super::leases`]): the
//! consumer's position moves over the acknowledged messages that follow it
//! without a gap, and those beyond a gap are kept on disk beside it
//! ([`crate::station::positions`]), durable before the answer, so an
//! acknowledged message is never handed out again.

use actix::prelude::*;
use tokio::sync::oneshot;

use depot_schemas::storage::ConsumerPosition;

use super::{StationActor, leases::load_group, positions::too_many_consumers};
use crate::{
    error::{BrokerError, BrokerResult},
    station::ConsumerName,
};

/// Acknowledgements one consumer keeps beyond its position at most: behind
/// a message nobody ever acknowledges (a poison message, with no
/// `max_deliveries` to take it out) they would grow without bound.
pub const MAX_ACKED_BEYOND_POSITION: usize = 100_000;

/// Acknowledges messages a worker has handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AckMessages {
    pub consumer: ConsumerName,
    pub offsets: Vec<u64>,
    /// Who acknowledges (kept with the position when it moves).
    pub committer: String,
    pub max_consumers: usize,
    /// The consumer's position afterwards, durable once sent.
    pub reply: oneshot::Sender<BrokerResult<ConsumerPosition>>,
}

impl StationActor {
    /// Counts `offsets` (those at or past `position`) as acknowledged for
    /// `consumer`: its position moves over the acknowledged messages that
    /// follow it without a gap, and those beyond a gap are kept on disk.
    /// Refused when more than `max_kept` would stay beyond the position.
    /// Returns the position written if it moved, and whether anything was
    /// written (unflushed).
    pub(super) fn record_acks(
        &mut self,
        consumer: &ConsumerName,
        position: u64,
        offsets: &[u64],
        max_kept: usize,
        committer: &str,
        max_consumers: usize,
    ) -> BrokerResult<(Option<ConsumerPosition>, bool)> {
        let positions = self.log.positions();
        let group = load_group(&mut self.groups, &positions, consumer, position)?;
        let new: Vec<u64> = offsets
            .iter()
            .copied()
            .filter(|&offset| offset >= position && !group.acked.contains(&offset))
            .collect();
        group.acked.extend(&new);
        let mut next = position;
        while group.acked.contains(&next) {
            next += 1;
        }
        // What stays beyond the position (closing the gap always goes).
        if group.acked.len() - (next - position) as usize > max_kept {
            for offset in &new {
                group.acked.remove(offset);
            }
            return Err(BrokerError::LimitReached {
                reason: format!(
                    "consumer {} of station {} holds {max_kept} acknowledgements beyond its position {position}, its limit: the message there is never acknowledged (fetch with max_deliveries to move such messages to the dead letters)",
                    consumer.as_str(),
                    self.name
                ),
            });
        }
        for offset in offsets {
            group.leases.remove(offset);
        }
        group.forget_below(next);
        let beyond: Vec<u64> = new.into_iter().filter(|&offset| offset >= next).collect();
        self.publish(consumer, 0, 0);
        positions.add_acks(consumer, &beyond)?;
        if next == position {
            return Ok((None, !beyond.is_empty()));
        }
        positions.remove_acks_below(consumer, next)?;
        let written = self.write_position(consumer, next, committer, max_consumers)?;
        Ok((Some(written), true))
    }

    /// Records acknowledgements; returns the consumer's position after
    /// them, and whether anything was written (unflushed).
    fn acknowledge(&mut self, ack: &AckMessages) -> BrokerResult<(ConsumerPosition, bool)> {
        if self.deleted {
            return Err(self.not_found());
        }
        let name = ack.consumer.as_str();
        let (stored, position) = self.position_of(&ack.consumer)?;
        let head = *self.durable_head.borrow();
        if let Some(&beyond) = ack.offsets.iter().find(|&&offset| offset >= head) {
            return Err(BrokerError::bad_request(format!(
                "offset {beyond} is not in station {} (its next offset is {head})",
                self.name
            )));
        }
        if !self.groups.contains_key(name) && self.groups.len() >= ack.max_consumers {
            return Err(too_many_consumers(&self.name, ack.max_consumers));
        }
        let (moved, wrote) = self.record_acks(
            &ack.consumer,
            position,
            &ack.offsets,
            MAX_ACKED_BEYOND_POSITION,
            &ack.committer,
            ack.max_consumers,
        )?;
        let position = moved.unwrap_or(ConsumerPosition {
            next_offset: position,
            ..stored.unwrap_or_default()
        });
        Ok((position, wrote))
    }
}

impl Handler<AckMessages> for StationActor {
    type Result = ();

    fn handle(&mut self, ack: AckMessages, _: &mut Self::Context) {
        let done = self.acknowledge(&ack);
        self.answer_when_durable(done, ack.reply);
    }
}
