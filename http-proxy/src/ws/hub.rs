//! [`Hub`]: this proxy's WebSocket connections as the broker's registry
//! sees them. The hub attaches the proxy to the broker (re-attaching after
//! the broker comes back, and registering again every connection it holds),
//! registers and unregisters connections as they come and go, and hands
//! each pushed notification to the connections it names, including the
//! broker's word that a user's sessions before some time are over.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use depot_broker::auth::{ROOT_USER, session_is_over};
use depot_schemas::wire::{self, request::Op};

use crate::broker_link::{Caller, SharedLink};

/// Notifications waiting for one connection, at most (more are dropped:
/// the connection is not keeping up).
pub const NOTIFY_QUEUE: usize = 64;
/// Between attempts to attach to the broker.
const REATTACH_AFTER: Duration = Duration::from_secs(1);

struct Local {
    user: String,
    notifications: mpsc::Sender<Bytes>,
    sessions_ended: watch::Sender<u64>,
}

/// What a connection receives from the hub once it has joined.
pub struct Joined {
    /// Notifications' data, in order; dropped when the connection's queue
    /// is full (it is not keeping up).
    pub notifications: mpsc::Receiver<Bytes>,
    /// Sessions of the connection's user that began before this time (ms)
    /// are over (0: none); never dropped, the latest time wins.
    pub sessions_ended: watch::Receiver<u64>,
}

pub struct Hub {
    /// How this proxy names itself in the registry.
    name: String,
    link: SharedLink,
    local: Mutex<HashMap<String, Local>>,
    /// The current attachment's id; 0 while not attached.
    attachment: AtomicU64,
}

impl Hub {
    pub fn new(name: String, link: SharedLink) -> Arc<Self> {
        Arc::new(Self {
            name,
            link,
            local: Mutex::new(HashMap::new()),
            attachment: AtomicU64::new(0),
        })
    }

    /// Keeps the proxy attached for as long as it runs.
    pub async fn run(self: Arc<Self>) {
        loop {
            let (into, mut pushed) = mpsc::channel(1024);
            match self.link.attach(self.name.clone(), into).await {
                Ok(id) => {
                    self.attachment.store(id, Ordering::Release);
                    let held: Vec<(String, String)> = self
                        .local
                        .lock()
                        .iter()
                        .map(|(id, local)| (id.clone(), local.user.clone()))
                        .collect();
                    for (connection, user) in held {
                        self.register(id, connection, user).await;
                    }
                    while let Some(notification) = pushed.recv().await {
                        self.deliver(notification);
                    }
                    self.attachment.store(0, Ordering::Release);
                    tracing::warn!(
                        "detached from the broker's connection registry; attaching again"
                    );
                }
                Err(error) => {
                    tracing::debug!(%error, "attaching to the broker's connection registry failed");
                }
            }
            tokio::time::sleep(REATTACH_AFTER).await;
        }
    }

    /// A connection authorized as `user`: it receives what is pushed to it.
    pub async fn join(&self, connection: &str, user: &str) -> Joined {
        let (notifications, receiver) = mpsc::channel(NOTIFY_QUEUE);
        let (sessions_ended, ended) = watch::channel(0);
        self.local.lock().insert(
            connection.to_owned(),
            Local {
                user: user.to_owned(),
                notifications,
                sessions_ended,
            },
        );
        let attachment = self.attachment.load(Ordering::Acquire);
        if attachment != 0 {
            self.register(attachment, connection.to_owned(), user.to_owned())
                .await;
        }
        Joined {
            notifications: receiver,
            sessions_ended: ended,
        }
    }

    pub async fn leave(&self, connection: &str) {
        self.local.lock().remove(connection);
        let op = Op::UnregisterConnection(wire::UnregisterConnection {
            connection: connection.to_owned(),
        });
        if let Err(error) = self.link.call_as(Caller::internal(ROOT_USER), op).await {
            tracing::debug!(%error, "unregistering a connection failed");
        }
    }

    async fn register(&self, attachment: u64, connection: String, user: String) {
        let op = Op::RegisterConnection(wire::RegisterConnection {
            attachment,
            connection,
            user,
        });
        if let Err(error) = self.link.call_as(Caller::internal(ROOT_USER), op).await {
            tracing::warn!(%error, "registering a connection failed");
        }
    }

    fn deliver(&self, notification: wire::Notification) {
        let local = self.local.lock();
        let ended_before = notification.sessions_ended_before_ms;
        for connection in &notification.connections {
            let Some(local) = local.get(connection) else {
                continue;
            };
            if ended_before == 0 {
                let _ = local.notifications.try_send(notification.data.clone());
            } else {
                local
                    .sessions_ended
                    .send_if_modified(|before| raise(before, ended_before));
            }
        }
    }
}

/// Raises `current` to `to`; whether it rose.
fn raise(current: &mut u64, to: u64) -> bool {
    let rose = to > *current;
    *current = (*current).max(to);
    rose
}

/// Resolves when the hub says the user's sessions before a time are over
/// and this connection's (issued at `issued_at_ms`) is one of them; never
/// before the connection has joined the hub.
pub async fn session_ends(ended: &mut Option<watch::Receiver<u64>>, issued_at_ms: u64) {
    let Some(ended) = ended else {
        return std::future::pending().await;
    };
    if ended
        .wait_for(|&before| session_is_over(issued_at_ms, before))
        .await
        .is_err()
    {
        // The hub let go of the connection: nothing more will come.
        std::future::pending::<()>().await;
    }
}
