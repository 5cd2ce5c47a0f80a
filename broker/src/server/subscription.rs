//! Server-side wire subscriptions: push a station's messages to a connection
//! as they become durable, never more than the client's credit.
//!
//! Credit-based flow control is what keeps memory bounded: a reader that
//! stops granting credit stops receiving, and the push task just waits; no
//! queue grows on the broker's side.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{Notify, mpsc};

use depot_schemas::wire::{self, ErrorCode, Response, response::Result as Reply};

use crate::{
    server::convert,
    station::{ReadLimits, StationHandle},
};

/// Messages per pushed batch at most.
const MAX_PUSH_MESSAGES: usize = 500;
/// Payload bytes per pushed batch at most (one larger message still goes).
const MAX_PUSH_BYTES: u64 = 1024 * 1024;

/// Credit granted by the client and not yet used.
#[derive(Default)]
pub struct Credit {
    available: AtomicU64,
    granted: Notify,
}

impl Credit {
    pub fn grant(&self, messages: u64) {
        self.available.fetch_add(messages, Ordering::AcqRel);
        self.granted.notify_one();
    }

    async fn wait(&self) -> u64 {
        loop {
            let granted = self.granted.notified();
            let available = self.available.load(Ordering::Acquire);
            if available > 0 {
                return available;
            }
            granted.await;
        }
    }

    fn spend(&self, messages: u64) {
        self.available.fetch_sub(messages, Ordering::AcqRel);
    }
}

/// Pushes from `cursor` on until the connection, the subscription or the
/// station goes away.
pub async fn push(
    id: u64,
    mut station: StationHandle,
    mut cursor: u64,
    credit: Arc<Credit>,
    responses: mpsc::Sender<Response>,
) {
    loop {
        let available = credit.wait().await;
        let head = *station.durable_head.borrow_and_update();
        if cursor >= head {
            if station.durable_head.changed().await.is_err() {
                let error = convert::error(
                    ErrorCode::StationNotFound,
                    format!("station deleted: {}", station.name),
                );
                let _ = responses.send(reply(id, Reply::Error(error))).await;
                return;
            }
            continue;
        }
        let limits = ReadLimits {
            max_messages: (available as usize).min(MAX_PUSH_MESSAGES),
            max_bytes: MAX_PUSH_BYTES,
        };
        let batch = match station.log.read(cursor, head, limits) {
            Ok(batch) => batch,
            Err(e) => {
                let _ = responses
                    .send(reply(id, Reply::Error(convert::broker_error(&e))))
                    .await;
                return;
            }
        };
        cursor = batch.next_offset.max(cursor);
        if batch.messages.is_empty() {
            continue;
        }
        credit.spend(batch.messages.len() as u64);
        let messages = batch
            .messages
            .into_iter()
            .map(convert::stored_message)
            .collect();
        let pushed = reply(id, Reply::MessageBatch(wire::MessageBatch { messages }));
        if responses.send(pushed).await.is_err() {
            return;
        }
    }
}

fn reply(id: u64, result: Reply) -> Response {
    Response {
        id,
        result: Some(result),
    }
}
