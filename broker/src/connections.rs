//! [`Connections`]: the registry of live WebSocket connections, held by the
//! broker so that any proxy can reach a connection held by any other (the
//! seed's connection table, without the table).
//!
//! A proxy *attaches* (one push stream per proxy); every connection it
//! registers belongs to that attachment. When the attachment ends (the
//! proxy's wire session closed: it stopped, crashed or lost the broker) its
//! connections are removed with it, so the registry holds no ghosts. A
//! notification for a user or a connection is pushed to the attachments
//! that hold the targets; each proxy hands it to its sockets.

use std::collections::HashMap;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{
    clock::now_ms,
    error::{BrokerError, BrokerResult},
};

/// Notifications waiting for one proxy, at most; beyond it they are not
/// delivered (and not counted as delivered).
const PUSH_QUEUE: usize = 4096;

/// A live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEntry {
    pub id: String,
    pub user: String,
    /// The proxy that holds it (as it named itself when attaching).
    pub proxy: String,
    pub connected_at_ms: u64,
}

/// What a proxy is asked to do: send `data` to each of its `connections`,
/// or, when `sessions_ended_before_ms` is not 0, close each of them whose
/// session (access token) began before that time (`data` is then empty).
#[derive(Debug, Clone)]
pub struct Notification {
    pub connections: Vec<String>,
    pub data: Bytes,
    pub sessions_ended_before_ms: u64,
}

/// Whom a notification is for.
#[derive(Debug, Clone)]
pub enum Target {
    User(String),
    Connection(String),
}

struct Attachment {
    proxy: String,
    pushes: mpsc::Sender<Notification>,
}

#[derive(Default)]
struct State {
    attachments: HashMap<u64, Attachment>,
    /// Connection id -> (its attachment, the entry).
    entries: HashMap<String, (u64, ConnectionEntry)>,
    next_attachment: u64,
}

#[derive(Default)]
pub struct Connections {
    state: Mutex<State>,
}

impl Connections {
    /// A proxy attaches: its id, and the stream of notifications for it.
    pub fn attach(&self, proxy: String) -> (u64, mpsc::Receiver<Notification>) {
        let (pushes, receiver) = mpsc::channel(PUSH_QUEUE);
        let mut state = self.state.lock();
        state.next_attachment += 1;
        let id = state.next_attachment;
        state.attachments.insert(id, Attachment { proxy, pushes });
        (id, receiver)
    }

    /// The attachment ended: it and its connections go.
    pub fn detach(&self, attachment: u64) {
        let mut state = self.state.lock();
        state.attachments.remove(&attachment);
        state.entries.retain(|_, (owner, _)| *owner != attachment);
    }

    pub fn register(&self, attachment: u64, id: String, user: String) -> BrokerResult<()> {
        let mut state = self.state.lock();
        let Some(proxy) = state.attachments.get(&attachment).map(|a| a.proxy.clone()) else {
            return Err(BrokerError::bad_request(format!(
                "no attachment {attachment}: attach the proxy first"
            )));
        };
        let entry = ConnectionEntry {
            id: id.clone(),
            user,
            proxy,
            connected_at_ms: now_ms(),
        };
        state.entries.insert(id, (attachment, entry));
        Ok(())
    }

    pub fn unregister(&self, id: &str) {
        self.state.lock().entries.remove(id);
    }

    /// Live connections (of one user), oldest first.
    pub fn list(&self, user: Option<&str>) -> Vec<ConnectionEntry> {
        let state = self.state.lock();
        let mut all: Vec<ConnectionEntry> = state
            .entries
            .values()
            .map(|(_, entry)| entry)
            .filter(|entry| user.is_none_or(|u| entry.user == u))
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.connected_at_ms, &a.id).cmp(&(b.connected_at_ms, &b.id)));
        all
    }

    /// Pushes `data` to the target's connections, wherever they are;
    /// returns how many connections it was handed to.
    pub fn notify(&self, target: &Target, data: Bytes) -> usize {
        let chosen = |entry: &ConnectionEntry| match target {
            Target::User(user) => &entry.user == user,
            Target::Connection(id) => &entry.id == id,
        };
        self.push(chosen, |connections| Notification {
            connections,
            data: data.clone(),
            sessions_ended_before_ms: 0,
        })
    }

    /// Asks the proxies holding `user`'s connections to close those whose
    /// session began before `before_ms` (its sessions were ended then, or,
    /// at `u64::MAX`, the user is gone); returns how many were named.
    pub fn end_sessions(&self, user: &str, before_ms: u64) -> usize {
        self.push(
            |entry| entry.user == user,
            |connections| Notification {
                connections,
                data: Bytes::new(),
                sessions_ended_before_ms: before_ms,
            },
        )
    }

    /// Sends each attachment one notification naming its `chosen`
    /// connections; returns how many connections were handed one.
    fn push(
        &self,
        chosen: impl Fn(&ConnectionEntry) -> bool,
        notification: impl Fn(Vec<String>) -> Notification,
    ) -> usize {
        let state = self.state.lock();
        let mut by_attachment: HashMap<u64, Vec<String>> = HashMap::new();
        for (attachment, entry) in state.entries.values() {
            if chosen(entry) {
                by_attachment
                    .entry(*attachment)
                    .or_default()
                    .push(entry.id.clone());
            }
        }
        let mut delivered = 0;
        for (attachment, connections) in by_attachment {
            let Some(proxy) = state.attachments.get(&attachment) else {
                continue;
            };
            let count = connections.len();
            if proxy.pushes.try_send(notification(connections)).is_ok() {
                delivered += count;
            }
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_every_proxy_holding_the_target_and_detach_leaves_no_ghosts() {
        let connections = Connections::default();
        let (a, mut to_a) = connections.attach("proxy-a".into());
        let (b, mut to_b) = connections.attach("proxy-b".into());
        connections.register(a, "c1".into(), "ana".into()).unwrap();
        connections.register(b, "c2".into(), "ana".into()).unwrap();
        connections.register(b, "c3".into(), "bob".into()).unwrap();
        assert!(connections.register(99, "c4".into(), "ana".into()).is_err());

        let data = Bytes::from_static(b"{\"hi\":1}");
        assert_eq!(
            connections.notify(&Target::User("ana".into()), data.clone()),
            2
        );
        assert_eq!(to_a.try_recv().unwrap().connections, ["c1"]);
        assert_eq!(to_b.try_recv().unwrap().connections, ["c2"]);
        assert_eq!(
            connections.notify(&Target::Connection("c3".into()), data.clone()),
            1
        );
        assert_eq!(to_b.try_recv().unwrap().connections, ["c3"]);
        assert_eq!(
            connections.notify(&Target::User("eve".into()), data.clone()),
            0
        );
        assert_eq!(connections.end_sessions("bob", 7_000), 1);
        let ended = to_b.try_recv().unwrap();
        assert_eq!(ended.connections, ["c3"]);
        assert_eq!(ended.sessions_ended_before_ms, 7_000);
        assert!(ended.data.is_empty());

        assert_eq!(connections.list(Some("ana")).len(), 2);
        connections.detach(b);
        let left: Vec<String> = connections.list(None).into_iter().map(|e| e.id).collect();
        assert_eq!(left, ["c1"]);
        connections.unregister("c1");
        assert!(connections.list(None).is_empty());
    }
}
