//! The reader half of a subscription's delivery: follows the station from
//! the subscription's cursor, woken by the station's durable head (no
//! polling), turns each message that passes the filter into a pending
//! delivery record, and admits them with the cursor in one atomic write
//! ([`DeliveryLog::admit`]), durable before their first attempt. A
//! semaphore bounds how many admitted deliveries may wait in the
//! [`DeliveryActor`]'s memory, so a slow endpoint holds the reader back.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use actix::prelude::*;
use tokio::sync::Semaphore;
use uuid::Uuid;

use depot_schemas::storage::{DeliveryRecord, DeliveryStatus};

use crate::{
    clock::now_ms,
    delivery::{DeliveryActor, DeliveryLog, Subscription},
    persist::GroupCommit,
    station::{Message, ReadLimits, StationHandle},
};

/// Messages the reader takes from the station at a time.
const READ_BATCH: usize = 256;

/// New deliveries from the reader.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Admitted(pub(super) Vec<(DeliveryRecord, Message)>);

/// What the reader needs to admit deliveries.
pub(super) struct Admission {
    /// Makes admissions durable before their first attempt.
    pub(super) group_commit: GroupCommit,
    /// Room for admitted deliveries in the actor.
    pub(super) room: Arc<Semaphore>,
    /// The actor's lowest never-attempted offset.
    pub(super) mark: Arc<AtomicU64>,
}

/// Follows the station from `cursor`, admitting deliveries; ends when the
/// actor or the station goes away.
pub(super) async fn read_station(
    actor: Addr<DeliveryActor>,
    sub: Subscription,
    station: StationHandle,
    log: DeliveryLog,
    admission: Admission,
    mut cursor: u64,
) {
    let Admission {
        group_commit,
        room,
        mark,
    } = admission;
    let mut head = station.durable_head.clone();
    loop {
        if *head.borrow_and_update() <= cursor {
            if head.changed().await.is_err() || !actor.connected() {
                return;
            }
            continue;
        }
        let limits = ReadLimits {
            max_messages: READ_BATCH,
            max_bytes: u64::MAX,
        };
        let batch = match station.read(cursor, limits) {
            Ok((batch, _)) => batch,
            Err(error) => {
                tracing::error!(subscription = %sub.id, %error, "reading the station failed");
                return;
            }
        };
        let now = now_ms();
        let chosen: Vec<Message> = batch
            .messages
            .into_iter()
            .filter(|m| sub.matches(m))
            .collect();
        let records: Vec<DeliveryRecord> = chosen
            .iter()
            .map(|m| {
                let mut record = DeliveryRecord {
                    id: Uuid::now_v7().to_string(),
                    offset: m.offset,
                    message_id: m.id.clone(),
                    next_attempt_at_ms: now,
                    created_at_ms: now,
                    updated_at_ms: now,
                    ..Default::default()
                };
                record.set_status(DeliveryStatus::Pending);
                record
            })
            .collect();
        // Wait for room before admitting, so a slow endpoint holds the reader
        // back instead of filling memory. A closed semaphore: the actor
        // stopped (paused or deleted), and a new one owns the cursor now.
        match room.clone().acquire_many_owned(records.len() as u32).await {
            Ok(permits) => permits.forget(),
            Err(_) => return,
        }
        if !actor.connected() {
            return;
        }
        // Below this, every delivery has had its first attempt recorded (the
        // actor has handled every earlier admission: the reader awaited it).
        let lowest = records.first().map_or(batch.next_offset, |r| r.offset);
        let mark = mark.load(Ordering::Acquire).min(lowest);
        if let Err(error) = log.admit(&records, batch.next_offset, mark) {
            tracing::error!(subscription = %sub.id, %error, "admitting deliveries failed");
            return;
        }
        // Durable before the first attempt: a crash after it must find the
        // same delivery (same webhook-id) pending, not admit a new one.
        if let Err(error) = group_commit.commit().await {
            tracing::error!(subscription = %sub.id, %error, "flushing admitted deliveries failed");
            return;
        }
        cursor = batch.next_offset;
        let admitted: Vec<(DeliveryRecord, Message)> = records.into_iter().zip(chosen).collect();
        if !admitted.is_empty() && actor.send(Admitted(admitted)).await.is_err() {
            return;
        }
    }
}
