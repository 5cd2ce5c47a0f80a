//! [`StationActor`]: the one writer of a station.
//!
//! Every produce to a station goes through its actor, which gives the
//! station a total order without locks: it checks each message, assigns
//! offsets, and stages the messages. Staged messages are written as one
//! atomic sled batch when the actor's mailbox is empty (a `WriteStaged`
//! notification is handled after every message already queued), so producers
//! that arrive together share one write and one group commit. Answers are sent
//! only once the group commit says the write is durable; the durable head that
//! readers follow moves at the same moment.
//!
//! The actor does little CPU work per message (a size check, a dedup lookup,
//! an encode); decoding requests and schema validation happen on the
//! connection threads before.

mod acks;
mod lease_changes;
mod leases;
mod poison;
mod positions;
mod purge;

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use depot_schemas::storage::{DedupEntry, StationCounters, StoredMessage, StoredRecord};

use crate::{
    clock::now_ms,
    error::{BrokerError, BrokerResult},
    persist::GroupCommit,
    schema::Attachment,
    station::{
        DeadLetters, Message, NewMessage, ProduceOutcome, RejectReason, SettingsChange, StationLog,
        StationMeta, StationName, StationSettings, WorkQueues, log::message_to_storage, retention,
    },
};

/// Payload bytes per stored record before a new one starts. Records are read
/// whole, so they stay small enough to fetch cheaply from any offset; and
/// sled keeps recently written leaves in memory whatever its cache limit, so
/// small values keep the broker's memory down (measured: 64 KiB records held
/// ~4x the memory of 4 KiB ones for the same messages, at the same speed).
const RECORD_TARGET_BYTES: usize = 4 * 1024;

pub use acks::AckMessages;
pub use lease_changes::{ChangeLeases, LeaseRef, LeasesChanged};
pub use leases::{LeaseMessages, Leased, LeasedMessage};
pub use positions::{CommitPosition, DeletePosition};
pub use purge::{Purge, Purged};

pub type ProduceReply = oneshot::Sender<BrokerResult<Vec<ProduceOutcome>>>;

/// Appends messages; `reply` gets one outcome per message once they are
/// durable. Sent with `do_send`, so produces enter the mailbox in exactly the
/// order they were sent (the callers bound what they have in flight).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Produce {
    pub messages: Vec<NewMessage>,
    pub producer: String,
    pub reply: ProduceReply,
}

/// Changes the station's settings (takes effect for the next message).
#[derive(Message)]
#[rtype(result = "StationSettings")]
pub struct UpdateSettings(pub SettingsChange);

/// Reports settings and counters.
#[derive(Message)]
#[rtype(result = "StationStats")]
pub struct Describe;

/// Stops the actor (the station is being deleted): staged writes are
/// answered with an error, readers see the durable head close.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Writes staged messages; sent by the actor to itself.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteStaged;

/// Runs the next retention pass; sent by the actor to itself while expired
/// messages remain.
#[derive(Message)]
#[rtype(result = "()")]
struct ContinueRetention;

/// Runs the next dead-letter trim; sent by the actor to itself while expired
/// dead letters remain.
#[derive(Message)]
#[rtype(result = "()")]
struct ContinueDeadLetterTrim;

/// A station's settings and counters at one moment.
#[derive(Debug, Clone)]
pub struct StationStats {
    pub name: StationName,
    pub settings: StationSettings,
    pub created_at_ms: u64,
    pub message_count: u64,
    pub bytes: u64,
    pub first_offset: u64,
    pub next_offset: u64,
    /// Filled in from the station's handle (the actor does not validate).
    pub schema: Option<Attachment>,
    /// Filled in from the station's handle (the registry keeps it).
    pub meta: StationMeta,
}

struct StagedProduce {
    outcomes: Vec<ProduceOutcome>,
    reply: ProduceReply,
}

pub struct StationActor {
    name: StationName,
    created_at_ms: u64,
    settings: StationSettings,
    log: StationLog,
    /// Trimmed by age with the log's retention.
    dead_letters: DeadLetters,
    group_commit: GroupCommit,
    /// How often retention runs.
    retention_interval: Duration,
    /// Counters including staged messages.
    counters: StationCounters,
    /// Counters as last written, to roll back to when a write fails.
    written: StationCounters,
    staged: Vec<StagedProduce>,
    staged_messages: Vec<StoredMessage>,
    /// msg-ids staged but not yet written, so duplicates inside one group
    /// are caught too.
    staged_ids: HashMap<String, u64>,
    write_scheduled: bool,
    /// Set once the station is being deleted: nothing more is written.
    deleted: bool,
    /// Retention removes every message below this offset (a purge; 0: none).
    purge_before: u64,
    /// Purges waiting for retention's passes to reach their offset.
    purges: Vec<purge::PendingPurge>,
    /// Consumers shared by workers: their leases, by consumer name.
    groups: HashMap<String, leases::Group>,
    /// The groups' figures, published for listings and metrics.
    work_queues: WorkQueues,
    /// Bumped when a worker changes a lease, to wake workers waiting for
    /// work ([`Leased::lease_changes`]).
    lease_changes: watch::Sender<u64>,
    durable_head: Arc<watch::Sender<u64>>,
}

impl StationActor {
    /// Recovers the station's counters from its log. The durable head starts
    /// at the recovered next offset: everything on disk is durable.
    pub fn recover(
        name: StationName,
        created_at_ms: u64,
        settings: StationSettings,
        log: StationLog,
        dead_letters: DeadLetters,
        group_commit: GroupCommit,
        retention_interval: Duration,
    ) -> BrokerResult<(Self, watch::Receiver<u64>)> {
        let counters = log.recover()?;
        let (durable_head, readers) = watch::channel(counters.next_offset);
        let actor = Self {
            name,
            created_at_ms,
            settings,
            log,
            dead_letters,
            group_commit,
            retention_interval,
            written: counters,
            counters,
            staged: Vec::new(),
            staged_messages: Vec::new(),
            staged_ids: HashMap::new(),
            write_scheduled: false,
            deleted: false,
            purge_before: 0,
            purges: Vec::new(),
            groups: HashMap::new(),
            work_queues: WorkQueues::default(),
            lease_changes: watch::Sender::new(0),
            durable_head: Arc::new(durable_head),
        };
        Ok((actor, readers))
    }

    /// Answers `reply` with what an operation did: once its writes are
    /// durable when it wrote (`Ok((_, true))`), at once otherwise.
    fn answer_when_durable<T: Send + 'static>(
        &self,
        done: BrokerResult<(T, bool)>,
        reply: oneshot::Sender<BrokerResult<T>>,
    ) {
        match done {
            Ok((value, true)) => self.group_commit.commit_then(move |outcome| {
                let _ = reply.send(outcome.map(|()| value));
            }),
            Ok((value, false)) => {
                let _ = reply.send(Ok(value));
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Its work queues' figures, for the station's handle.
    pub fn work_queues(&self) -> WorkQueues {
        self.work_queues.clone()
    }

    fn stage(&mut self, produce: Produce) {
        let reply = produce.reply;
        let mut outcomes = Vec::with_capacity(produce.messages.len());
        for message in produce.messages {
            match self.stage_message(message, &produce.producer) {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => {
                    let _ = reply.send(Err(error));
                    return;
                }
            }
        }
        self.staged.push(StagedProduce { outcomes, reply });
    }

    fn stage_message(
        &mut self,
        message: NewMessage,
        producer: &str,
    ) -> BrokerResult<ProduceOutcome> {
        let size = message.payload.len();
        if size as u64 > self.settings.max_message_bytes {
            return Ok(ProduceOutcome::Rejected {
                reason: RejectReason::TooLarge {
                    size,
                    limit: self.settings.max_message_bytes,
                },
            });
        }
        let now = now_ms();
        if let Some(msg_id) = &message.msg_id
            && let Some(offset) = self.original_of(msg_id, now)?
        {
            return Ok(ProduceOutcome::Duplicate { offset });
        }
        let offset = self.counters.next_offset;
        self.counters.next_offset += 1;
        self.counters.bytes += size as u64;
        let producer_id = message.msg_id.is_some();
        let id = match message.msg_id {
            Some(msg_id) => {
                self.staged_ids.insert(msg_id.clone(), offset);
                msg_id
            }
            None => Uuid::now_v7().to_string(),
        };
        let stored = Message {
            offset,
            id,
            timestamp_ms: now,
            headers: message.headers,
            content_type: message.content_type,
            payload: message.payload,
            producer: producer.to_owned(),
        };
        self.staged_messages
            .push(message_to_storage(stored, producer_id));
        Ok(ProduceOutcome::Stored { offset })
    }

    /// The offset of an earlier message with this msg-id inside the
    /// idempotency window, if any.
    fn original_of(&self, msg_id: &str, now: u64) -> BrokerResult<Option<u64>> {
        if let Some(&offset) = self.staged_ids.get(msg_id) {
            return Ok(Some(offset));
        }
        let window = self.settings.idempotency_window.as_millis() as u64;
        Ok(self
            .log
            .dedup_entry(msg_id)?
            .filter(|entry| now.saturating_sub(entry.timestamp_ms) < window)
            .map(|entry| entry.offset))
    }

    /// Writes every staged message in one atomic batch, then answers the
    /// producers once the group commit has made it durable.
    fn write_staged(&mut self) {
        self.write_scheduled = false;
        if self.staged.is_empty() || self.deleted {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        let messages = std::mem::take(&mut self.staged_messages);
        self.staged_ids.clear();

        let dedup: Vec<(String, DedupEntry)> = messages
            .iter()
            .filter(|m| m.producer_id)
            .map(|m| {
                let entry = DedupEntry {
                    offset: m.offset,
                    timestamp_ms: m.timestamp_ms,
                };
                (m.id.clone(), entry)
            })
            .collect();
        let records = into_records(messages);
        if let Err(error) = self.log.append(records, &dedup, &self.counters) {
            tracing::error!(station = %self.name, %error, "write failed");
            self.counters = self.written;
            // What part of the group was written goes: its offsets are
            // handed out again.
            if let Err(error) = self.log.discard_from(self.written.next_offset) {
                tracing::error!(station = %self.name, %error, "discarding a failed write failed");
            }
            return fail_all(staged, &error);
        }
        self.written = self.counters;

        let durable_head = self.durable_head.clone();
        let head = self.counters.next_offset;
        self.group_commit.commit_then(move |outcome| match outcome {
            Ok(()) => {
                // Groups complete in order and a later group's flush covers
                // every earlier write, so the head only moves forward.
                durable_head.send_if_modified(|current| {
                    let advance = head > *current;
                    if advance {
                        *current = head;
                    }
                    advance
                });
                for produce in staged {
                    let _ = produce.reply.send(Ok(produce.outcomes));
                }
            }
            Err(error) => fail_all(staged, &error),
        });
    }

    fn not_found(&self) -> BrokerError {
        BrokerError::StationNotFound {
            name: self.name.to_string(),
        }
    }

    /// Answers staged produces with "station not found" (it is being deleted).
    fn abandon_staged(&mut self) {
        self.staged_messages.clear();
        self.staged_ids.clear();
        for produce in std::mem::take(&mut self.staged) {
            let _ = produce.reply.send(Err(self.not_found()));
        }
    }

    /// Runs one retention pass; when it stopped at its limit, the next one
    /// is queued behind the messages already in the mailbox.
    fn enforce_retention(&mut self, ctx: &mut Context<Self>) {
        if self.deleted {
            return;
        }
        // Retention rewrites the counters, so staged messages go first:
        // otherwise it would persist a next offset ahead of the records.
        self.write_staged();
        let pass = retention::enforce(
            &self.log,
            &self.settings,
            self.counters,
            now_ms(),
            self.purge_before,
            retention::RECORDS_PER_PASS,
        );
        match pass {
            Ok(pass) => {
                self.counters = pass.counters;
                self.written = pass.counters;
                if pass.more {
                    ctx.notify(ContinueRetention);
                    return;
                }
                self.answer_purges(None);
            }
            Err(error) => {
                tracing::error!(station = %self.name, %error, "retention failed");
                self.answer_purges(Some(&error));
            }
        }
        self.trim_dead_letters(ctx);
    }

    /// Removes expired dead letters, in passes of the same bound as the
    /// records' (without repeating the records' pass in between).
    fn trim_dead_letters(&mut self, ctx: &mut Context<Self>) {
        let keep_for = self.settings.dead_letter_retention.as_millis() as u64;
        if keep_for == 0 || self.deleted {
            return;
        }
        let cutoff = now_ms().saturating_sub(keep_for);
        match self
            .dead_letters
            .trim_older_than(cutoff, retention::RECORDS_PER_PASS)
        {
            Ok(removed) if removed == retention::RECORDS_PER_PASS => {
                ctx.notify(ContinueDeadLetterTrim);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(station = %self.name, %error, "dead-letter retention failed")
            }
        }
    }

    fn stats(&self) -> StationStats {
        let next_offset = *self.durable_head.borrow();
        StationStats {
            name: self.name.clone(),
            settings: self.settings,
            created_at_ms: self.created_at_ms,
            message_count: next_offset.saturating_sub(self.counters.first_offset),
            bytes: self.written.bytes,
            first_offset: self.counters.first_offset.min(next_offset),
            next_offset,
            schema: None,
            meta: StationMeta::default(),
        }
    }
}

/// Answers every staged produce with a storage failure; they may retry.
fn fail_all(staged: Vec<StagedProduce>, error: &BrokerError) {
    let reason = error.to_string();
    for produce in staged {
        let _ = produce.reply.send(Err(BrokerError::FlushFailed {
            reason: reason.clone(),
        }));
    }
}

/// Splits consecutive messages into records of about [`RECORD_TARGET_BYTES`].
fn into_records(messages: Vec<StoredMessage>) -> Vec<StoredRecord> {
    let mut records = Vec::new();
    let mut current = StoredRecord::default();
    let mut bytes = 0;
    for message in messages {
        if !current.messages.is_empty() && bytes + message.payload.len() > RECORD_TARGET_BYTES {
            records.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += message.payload.len();
        current.messages.push(message);
    }
    if !current.messages.is_empty() {
        records.push(current);
    }
    records
}

impl Actor for StationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.retention_interval, |actor, ctx| {
            actor.enforce_retention(ctx)
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.abandon_staged();
    }
}

impl Handler<Produce> for StationActor {
    type Result = ();

    fn handle(&mut self, produce: Produce, ctx: &mut Self::Context) {
        if self.deleted {
            let _ = produce.reply.send(Err(self.not_found()));
            return;
        }
        self.stage(produce);
        if !self.write_scheduled {
            self.write_scheduled = true;
            ctx.notify(WriteStaged);
        }
    }
}

impl Handler<WriteStaged> for StationActor {
    type Result = ();

    fn handle(&mut self, _: WriteStaged, _: &mut Self::Context) {
        self.write_staged();
    }
}

impl Handler<ContinueRetention> for StationActor {
    type Result = ();

    fn handle(&mut self, _: ContinueRetention, ctx: &mut Self::Context) {
        self.enforce_retention(ctx);
    }
}

impl Handler<ContinueDeadLetterTrim> for StationActor {
    type Result = ();

    fn handle(&mut self, _: ContinueDeadLetterTrim, ctx: &mut Self::Context) {
        self.trim_dead_letters(ctx);
    }
}

impl Handler<UpdateSettings> for StationActor {
    type Result = MessageResult<UpdateSettings>;

    fn handle(
        &mut self,
        UpdateSettings(change): UpdateSettings,
        _: &mut Self::Context,
    ) -> Self::Result {
        self.settings = self.settings.with(change);
        self.dead_letters.set_keep(self.settings.keep_dead_letters);
        MessageResult(self.settings)
    }
}

impl Handler<Describe> for StationActor {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<Shutdown> for StationActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.deleted = true;
        self.abandon_staged();
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::{
        Broker,
        station::{NewMessage, SettingsChange, StationSettings, retention::RECORDS_PER_PASS},
    };

    /// A broker with station "big" holding a little over two retention
    /// passes of messages (4 KiB each: a record each); retention runs every
    /// `retention_interval`. Returns the broker and the messages stored.
    async fn big_station(
        dir: &std::path::Path,
        retention_interval: Duration,
    ) -> (Broker, std::sync::Arc<crate::auth::Principal>, u64) {
        let broker = Broker::open_for_test(dir, |config| {
            config.options.retention_interval = retention_interval;
        });
        let root = broker.principal("root").unwrap();
        broker
            .create_station(&root, "big", StationSettings::default(), String::new())
            .await
            .unwrap();
        let batches = (2 * RECORDS_PER_PASS + 50) / 150 + 1;
        for _ in 0..batches {
            let batch = (0..150)
                .map(|_| NewMessage {
                    content_type: "text/plain".into(),
                    payload: vec![b'x'; 4096].into(),
                    ..Default::default()
                })
                .collect();
            broker.produce(&root, "big", batch).await.unwrap();
        }
        (broker, root, (batches * 150) as u64)
    }

    #[actix_rt::test]
    async fn retention_beyond_one_pass_continues_without_waiting_for_the_timer() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, root, _) = big_station(dir.path(), Duration::from_secs(1)).await;
        let keep_one = SettingsChange {
            retention_messages: Some(1),
            ..Default::default()
        };
        broker
            .update_station(&root, "big", keep_one, None)
            .await
            .unwrap();

        // The first timer tick comes within a second; passes two and three
        // follow at once. On the timer alone they would take two more ticks.
        let started = Instant::now();
        loop {
            let stats = broker.describe_station(&root, "big").await.unwrap();
            if stats.message_count == 1 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_millis(1_900),
                "{} messages left after {:?}",
                stats.message_count,
                started.elapsed()
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        broker.shutdown();
    }

    #[actix_rt::test]
    async fn a_purge_beyond_one_pass_is_answered_once_it_is_done() {
        let dir = tempfile::tempdir().unwrap();
        // Retention's timer stays out of the way: only the purge removes.
        let (broker, root, stored) = big_station(dir.path(), Duration::from_secs(3600)).await;
        let keep_from = stored - 10;

        let purged = broker
            .purge_station(&root, "big", Some(keep_from))
            .await
            .unwrap();
        assert_eq!(purged.removed, keep_from);
        assert_eq!(purged.first_offset, keep_from);
        let stats = broker.describe_station(&root, "big").await.unwrap();
        assert_eq!((stats.message_count, stats.first_offset), (10, keep_from));
        assert_eq!(stats.bytes, 10 * 4096);

        // Everything, then nothing more to do; offsets go on.
        let all = broker.purge_station(&root, "big", None).await.unwrap();
        assert_eq!((all.removed, all.first_offset), (10, stored));
        let again = broker.purge_station(&root, "big", None).await.unwrap();
        assert_eq!((again.removed, again.first_offset), (0, stored));
        let next = NewMessage {
            content_type: "text/plain".into(),
            payload: b"after".to_vec().into(),
            ..Default::default()
        };
        let outcomes = broker.produce(&root, "big", vec![next]).await.unwrap();
        assert!(
            matches!(outcomes[..], [crate::station::ProduceOutcome::Stored { offset }] if offset == stored),
            "{outcomes:?}"
        );
        broker.shutdown();
    }
}
