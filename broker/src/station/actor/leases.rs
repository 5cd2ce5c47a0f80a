//! Leases: one consumer shared by several workers, as a work queue. A
//! fetch for a consumer with a lease hands each worker messages no other
//! worker holds, and holds them for the lease's time; a worker acknowledges
//! each message it has handled. A message whose lease ends unacknowledged
//! (its worker crashed or is too slow) is handed out again, with its
//! delivery count one higher: at least once, as every reader here.
//!
//! The consumer's committed position ([`crate::station::positions`]) moves
//! over the acknowledged messages that follow it without a gap; those
//! acknowledged beyond a gap are kept beside it. Both are durable before
//! the acknowledgement is answered, so a restart hands out again only what
//! nobody acknowledged. Which messages are leased, and how often each was
//! handed out, is kept in the actor's memory only.
//! The actor owns this state as it owns the station's writes, so two
//! workers never get the same message from it at once.
//!
//! Workers acknowledge with [`AckMessages`] (`acks`), change when their
//! leases end with [`ChangeLeases`] (`lease_changes`), and a fetch may
//! bound how often a message is handed out: past that it is a dead letter
//! of the consumer (`poison`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant},
};

use actix::prelude::*;
use tokio::sync::{oneshot, watch};

use depot_schemas::storage::ConsumerPosition;

use super::{StationActor, positions::too_many_consumers};
use crate::{
    error::BrokerResult,
    station::{ConsumerName, Message, Positions, ReadLimits},
};

/// Messages past their delivery limit one lease moves to the dead letters
/// at most: bounds the work of one fetch (the next takes the rest).
const MAX_POISON_PER_LEASE: usize = 1000;

/// Leases one worker's share of a consumer's messages.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaseMessages {
    pub consumer: ConsumerName,
    pub limits: ReadLimits,
    /// How long the worker holds them.
    pub lease: Duration,
    /// A message whose lease ended this many times unacknowledged goes to
    /// the dead letters instead of out again (0: no limit).
    pub max_deliveries: u32,
    /// The worker's user: kept with the position when dead letters move it.
    pub worker: String,
    /// Messages one consumer may hold leased at once (beyond it a fetch
    /// gets nothing until leases end or are acknowledged).
    pub max_leased: usize,
    /// `--max-consumers`: the consumers with leases count against it.
    pub max_consumers: usize,
    pub reply: oneshot::Sender<BrokerResult<Leased>>,
}

/// What a lease handed out.
#[derive(Debug)]
pub struct Leased {
    /// Oldest first: expired leases' messages (again), then new ones.
    pub messages: Vec<LeasedMessage>,
    /// When the earliest lease still held ends (a worker waiting for work
    /// may try again then).
    pub next_expiry: Option<Instant>,
    /// The durable head the lease looked up to.
    pub head: u64,
    /// Changes when a worker changes a lease (it may end sooner now), so a
    /// worker waiting for work looks again.
    pub lease_changes: watch::Receiver<u64>,
}

#[derive(Debug)]
pub struct LeasedMessage {
    pub message: Message,
    /// How many times a lease has handed this message out, this one
    /// included (since the broker started).
    pub deliveries: u32,
}

/// One consumer's leases and acknowledgements beyond its position.
#[derive(Default)]
pub(super) struct Group {
    pub(super) leases: BTreeMap<u64, Lease>,
    /// Acknowledged, but after a gap (a message still leased or due
    /// again), so the position cannot move over them yet.
    pub(super) acked: BTreeSet<u64>,
    /// Every offset from here on has never been leased.
    fresh_from: u64,
}

pub(super) struct Lease {
    pub(super) ends: Instant,
    pub(super) deliveries: u32,
}

impl Group {
    /// Forgets what lies below `position` (committed, or purged).
    pub(super) fn forget_below(&mut self, position: u64) {
        self.leases = self.leases.split_off(&position);
        self.acked = self.acked.split_off(&position);
        self.fresh_from = self.fresh_from.max(position);
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.leases.values().map(|lease| lease.ends).min()
    }
}

/// `consumer`'s group, from its acknowledgements on disk when the actor has
/// none yet (after a start), with what lies below `position` forgotten.
pub(super) fn load_group<'a>(
    groups: &'a mut HashMap<String, Group>,
    positions: &Positions,
    consumer: &ConsumerName,
    position: u64,
) -> BrokerResult<&'a mut Group> {
    let name = consumer.as_str();
    if !groups.contains_key(name) {
        let group = Group {
            acked: positions.acks(consumer)?.into_iter().collect(),
            ..Default::default()
        };
        groups.insert(name.to_owned(), group);
    }
    let group = groups.get_mut(name).expect("inserted above");
    group.forget_below(position);
    Ok(group)
}

impl StationActor {
    /// Drops `consumer`'s leases and acknowledgements (unflushed): its
    /// position was set or removed by hand, so its workers start afresh
    /// from there. Whether it had any.
    pub(super) fn forget_leases(&mut self, consumer: &ConsumerName) -> BrokerResult<bool> {
        let leased = self.groups.remove(consumer.as_str()).is_some();
        self.work_queues.remove(consumer.as_str());
        let kept = self.log.positions().remove_acks_below(consumer, u64::MAX)?;
        Ok(leased || kept > 0)
    }

    /// The consumer's stored position, and where it stands: its next
    /// offset, never below the oldest message.
    pub(super) fn position_of(
        &self,
        consumer: &ConsumerName,
    ) -> BrokerResult<(Option<ConsumerPosition>, u64)> {
        let stored = self.log.positions().get(consumer)?;
        let next = stored
            .as_ref()
            .map_or(0, |p| p.next_offset)
            .max(self.counters.first_offset);
        Ok((stored, next))
    }

    /// Leases a worker's share; also whether it wrote (dead letters, a
    /// position), so the answer waits for the flush.
    fn lease(&mut self, request: &LeaseMessages) -> BrokerResult<(Leased, bool)> {
        if self.deleted {
            return Err(self.not_found());
        }
        let name = request.consumer.as_str();
        if !self.groups.contains_key(name) && self.groups.len() >= request.max_consumers {
            return Err(too_many_consumers(&self.name, request.max_consumers));
        }
        let (_, position) = self.position_of(&request.consumer)?;
        let head = *self.durable_head.borrow();
        let positions = self.log.positions();
        let group = load_group(&mut self.groups, &positions, &request.consumer, position)?;
        let now = Instant::now();
        let ends = now + request.lease;
        let mut leased = Vec::new();
        let mut bytes = 0u64;
        let room = |leased: &Vec<LeasedMessage>, bytes: u64| {
            leased.len() < request.limits.max_messages
                && (leased.is_empty() || bytes < request.limits.max_bytes)
        };

        // Messages whose lease ended come first, oldest first; those handed
        // out too often already go to the dead letters instead.
        let expired: Vec<u64> = group
            .leases
            .iter()
            .filter(|(_, lease)| lease.ends <= now)
            .map(|(&offset, _)| offset)
            .take(request.limits.max_messages + MAX_POISON_PER_LEASE)
            .collect();
        let mut poison = Vec::new();
        let mut redelivered = 0;
        for offset in expired {
            let spent = request.max_deliveries > 0
                && group.leases[&offset].deliveries >= request.max_deliveries;
            if !spent && !room(&leased, bytes) {
                break;
            }
            let one = ReadLimits {
                max_messages: 1,
                max_bytes: u64::MAX,
            };
            let message = self
                .log
                .read(offset, head, one)?
                .messages
                .into_iter()
                .find(|message| message.offset == offset);
            let Some(message) = message else {
                // Removed meanwhile (retention, a purge): nothing to redo.
                group.leases.remove(&offset);
                continue;
            };
            if spent {
                let lease = group.leases.remove(&offset).expect("listed above");
                poison.push(LeasedMessage {
                    message,
                    deliveries: lease.deliveries,
                });
                continue;
            }
            let lease = group.leases.get_mut(&offset).expect("listed above");
            lease.ends = ends;
            lease.deliveries += 1;
            redelivered += 1;
            bytes += message.payload.len() as u64;
            let deliveries = lease.deliveries;
            leased.push(LeasedMessage {
                message,
                deliveries,
            });
        }

        // Then messages never leased, within the consumer's lease limit.
        let room_left = request
            .max_leased
            .saturating_sub(group.leases.len())
            .min(request.limits.max_messages - leased.len());
        if room_left > 0 && room(&leased, bytes) {
            let limits = ReadLimits {
                max_messages: room_left,
                max_bytes: request.limits.max_bytes.saturating_sub(bytes).max(1),
            };
            let batch = self.log.read(group.fresh_from, head, limits)?;
            group.fresh_from = batch.next_offset;
            for message in batch.messages {
                if group.acked.contains(&message.offset) {
                    continue;
                }
                let lease = Lease {
                    ends,
                    deliveries: 1,
                };
                group.leases.insert(message.offset, lease);
                leased.push(LeasedMessage {
                    message,
                    deliveries: 1,
                });
            }
        }
        let next_expiry = group.next_expiry();
        let wrote = !poison.is_empty();
        let dead_lettered = poison.len() as u64;
        if wrote {
            let offsets: Vec<u64> = poison.iter().map(|p| p.message.offset).collect();
            self.dead_letter_unacknowledged(&request.consumer, poison)?;
            // Unbounded: a poison message leaves whatever is kept.
            self.record_acks(
                &request.consumer,
                position,
                &offsets,
                usize::MAX,
                &request.worker,
                request.max_consumers,
            )?;
        }
        let leased = Leased {
            messages: leased,
            next_expiry,
            head,
            lease_changes: self.lease_changes.subscribe(),
        };
        self.publish(&request.consumer, redelivered, dead_lettered);
        Ok((leased, wrote))
    }

    /// Publishes `consumer`'s figures for listings and metrics, counting
    /// `redelivered` and `dead_lettered` messages more.
    pub(super) fn publish(&self, consumer: &ConsumerName, redelivered: u64, dead_lettered: u64) {
        let Some(group) = self.groups.get(consumer.as_str()) else {
            return;
        };
        self.work_queues.update(consumer.as_str(), |stats| {
            stats.leased = group.leases.len() as u64;
            stats.acknowledged_ahead = group.acked.len() as u64;
            stats.redeliveries += redelivered;
            stats.dead_lettered += dead_lettered;
        });
    }
}

impl Handler<LeaseMessages> for StationActor {
    type Result = ();

    fn handle(&mut self, request: LeaseMessages, _: &mut Self::Context) {
        let done = self.lease(&request);
        self.answer_when_durable(done, request.reply);
    }
}
