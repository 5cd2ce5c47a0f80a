//! Notification stations: a station with `notify_connections` set pushes
//! each new message that carries a `user` (or `connection`) header to those
//! WebSocket connections, as `Notify` does. The seed's NotifyUser and
//! NotifyConnection queues, done with one mechanism: producers anywhere
//! (HTTP, wire, webhooks' receivers producing back) reach browsers.
//!
//! One follower task per notification station reads from the durable head
//! when it starts (notifications are for who is connected now; nothing is
//! replayed) and stops when the setting is turned off or the station goes.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use base64::Engine as _;
use bytes::Bytes;

use crate::{
    broker::Broker,
    connections::Target,
    station::{Message, ReadLimits, StationHandle, StationName},
};

/// Header naming the user whose connections get the message.
pub const USER_HEADER: &str = "user";
/// Headers naming the one connection that gets the message (over HTTP,
/// `connection-id`: `Connection` is an HTTP hop-by-hop header).
pub const CONNECTION_HEADERS: [&str; 2] = ["connection", "connection-id"];

const READ: ReadLimits = ReadLimits {
    max_messages: 256,
    max_bytes: 4 * 1024 * 1024,
};

impl Broker {
    /// Starts or stops a station's follower to match its setting.
    pub(super) fn set_notifications(&self, station: &StationHandle, on: bool) {
        let mut running = self.inner.notifiers.lock();
        match (running.get(&station.name), on) {
            (Some(_), true) | (None, false) => {}
            (Some(_), false) => {
                if let Some(flag) = running.remove(&station.name) {
                    flag.store(false, Ordering::Release);
                }
            }
            (None, true) => {
                let flag = Arc::new(AtomicBool::new(true));
                running.insert(station.name.clone(), flag.clone());
                actix::spawn(follow(self.clone(), station.clone(), flag));
            }
        }
    }

    /// After a restart: a follower for every notification station.
    pub(super) async fn start_notifications(&self) {
        for station in self.inner.directory.all() {
            if let Ok(stats) = super::stations::describe(&station).await
                && stats.settings.notify_connections
            {
                self.set_notifications(&station, true);
            }
        }
    }

    fn forget_notifier(&self, name: &StationName) {
        self.inner.notifiers.lock().remove(name);
    }
}

async fn follow(broker: Broker, station: StationHandle, running: Arc<AtomicBool>) {
    let mut head = station.durable_head.clone();
    let mut cursor = *head.borrow_and_update();
    while running.load(Ordering::Acquire) {
        if *head.borrow_and_update() <= cursor {
            if head.changed().await.is_err() {
                // The station was deleted.
                broker.forget_notifier(&station.name);
                return;
            }
            continue;
        }
        let batch = match station.read(cursor, READ) {
            Ok((batch, _)) => batch,
            Err(error) => {
                tracing::error!(station = %station.name, %error, "reading a notification station failed");
                broker.forget_notifier(&station.name);
                return;
            }
        };
        cursor = batch.next_offset;
        for message in &batch.messages {
            if let Some(target) = target_of(message) {
                broker.inner.connections.notify(&target, data_of(message));
            }
        }
    }
}

fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn target_of(message: &Message) -> Option<Target> {
    for name in CONNECTION_HEADERS {
        if let Some(connection) = header(message, name) {
            return Some(Target::Connection(connection.to_owned()));
        }
    }
    header(message, USER_HEADER).map(|user| Target::User(user.to_owned()))
}

/// The notification's JSON: the payload itself when it is JSON, a string
/// when it is text, base64 otherwise.
fn data_of(message: &Message) -> Bytes {
    if serde_json::from_slice::<serde::de::IgnoredAny>(&message.payload).is_ok() {
        return message.payload.clone();
    }
    let text = match std::str::from_utf8(&message.payload) {
        Ok(text) => text.to_owned(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(&message.payload),
    };
    Bytes::from(serde_json::Value::String(text).to_string())
}
