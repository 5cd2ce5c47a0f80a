//! A remote `depot-broker`, reached through a small pool of pipelined wire
//! connections. A connection that fails is dropped and made again on a later
//! request, no sooner than its backoff allows, so a broker that is down is
//! not hammered and requests fail fast (503) instead of hanging.
//!
//! A connection's reader and writer tasks run on the worker thread that
//! opened it, so each worker thread uses the connections it opened: a
//! request then never wakes another thread to be sent or answered
//! (`depot-bench http`, single messages through a remote broker, two
//! interleaved pairs of runs: 19.5k and 20.0k req/s before, 21.0k and 28.5k
//! after).

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    thread::{self, ThreadId},
    time::{Duration, Instant},
};

use futures::{FutureExt, future::BoxFuture};
use tokio::sync::Mutex;

use depot_broker::client::{BrokerClient, ClientError, Endpoint, Secret};
use depot_schemas::wire::{
    ConsumeToken, NewMessage, ProduceOutcome, request::Op, response::Result as Reply,
};

use super::{
    BrokerLink, Caller, FollowFrom, FollowSender, LinkError, LinkResult, NotificationSender,
};

/// First wait after a failed connection attempt; doubles up to the maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a connection attempt may take before the request fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Slot {
    client: Option<BrokerClient>,
    /// The thread that opened `client` (where its tasks run).
    owner: Option<ThreadId>,
    /// No new attempt before this instant.
    retry_at: Option<Instant>,
    backoff: Duration,
}

pub struct RemoteBroker {
    /// The broker's address, and TLS settings when the wire runs over TLS.
    endpoint: Endpoint,
    user: String,
    password: String,
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
}

impl RemoteBroker {
    pub fn new(endpoint: Endpoint, user: String, password: String, connections: usize) -> Self {
        Self {
            endpoint,
            user,
            password,
            slots: (0..connections.max(1)).map(|_| Mutex::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A connected client: one this thread opened, else a slot without a
    /// live connection (re)connected by this thread when its backoff allows,
    /// else any healthy connection, else the outcome of an attempt another
    /// request has in progress. Requests fail fast (503) while the broker is
    /// down: attempts then fail at once or wait out their backoff without
    /// trying. But when the broker has just come back and every slot is
    /// being reconnected, a request waits for one of those attempts instead
    /// of failing while the broker is there.
    async fn client(&self) -> LinkResult<BrokerClient> {
        let here = thread::current().id();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let order = || (0..self.slots.len()).map(move |i| (first + i) % self.slots.len());
        let mut free = None;
        for index in order() {
            // A slot held for longer than a glance is being reconnected:
            // pass it by for now.
            let Ok(slot) = self.slots[index].try_lock() else {
                continue;
            };
            match &slot.client {
                Some(client) if !client.is_closed() && slot.owner == Some(here) => {
                    return Ok(client.clone());
                }
                Some(client) if !client.is_closed() => {}
                // A dead slot this thread owned is its first choice.
                _ if free.is_none() || slot.owner == Some(here) => free = Some(index),
                _ => {}
            }
        }
        let chosen = match free {
            Some(index) => self.connected_or_reconnected(index).await,
            None => Err(LinkError::Unavailable(format!(
                "the connections to the broker at {} are being re-established; retry shortly",
                self.endpoint.address
            ))),
        };
        if chosen.is_ok() {
            return chosen;
        }
        let mut being_reconnected = None;
        for index in order() {
            let Ok(slot) = self.slots[index].try_lock() else {
                being_reconnected.get_or_insert(index);
                continue;
            };
            if let Some(client) = slot.client.as_ref().filter(|c| !c.is_closed()) {
                return Ok(client.clone());
            }
        }
        match being_reconnected {
            Some(index) => self.connected_or_reconnected(index).await,
            None => chosen,
        }
    }

    async fn connected_or_reconnected(&self, index: usize) -> LinkResult<BrokerClient> {
        let mut slot = self.slots[index].lock().await;
        if let Some(client) = &slot.client {
            if !client.is_closed() {
                return Ok(client.clone());
            }
            slot.client = None;
        }
        if let Some(retry_at) = slot.retry_at
            && Instant::now() < retry_at
        {
            return Err(LinkError::Unavailable(format!(
                "cannot reach the broker at {}; retrying shortly",
                self.endpoint.address
            )));
        }
        let secret = Secret::Password(self.password.clone());
        let connect = BrokerClient::connect_to(&self.endpoint, &self.user, secret);
        let failure = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(client)) => {
                slot.client = Some(client.clone());
                slot.owner = Some(thread::current().id());
                slot.retry_at = None;
                slot.backoff = Duration::ZERO;
                return Ok(client);
            }
            Ok(Err(ClientError::Broker { code, message })) => {
                // The broker is up but refuses our credentials: a
                // configuration error.
                tracing::error!(%message, ?code, "the broker refused the proxy's credentials");
                format!("the broker refused the proxy: {message}")
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!(
                "connecting to the broker at {} timed out",
                self.endpoint.address
            ),
        };
        slot.backoff = (slot.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        slot.retry_at = Some(Instant::now() + slot.backoff);
        Err(LinkError::Unavailable(failure))
    }

    /// Runs one call on a pooled connection, mapping its error (a lost
    /// connection empties its slot).
    async fn with_client<T, Call>(&self, call: impl FnOnce(BrokerClient) -> Call) -> LinkResult<T>
    where
        Call: Future<Output = Result<T, ClientError>>,
    {
        let client = self.client().await?;
        match call(client.clone()).await {
            Ok(value) => Ok(value),
            Err(error) => Err(self.failed(&client, error).await),
        }
    }

    /// Maps a client error; a lost connection empties its slot.
    async fn failed(&self, client: &BrokerClient, error: ClientError) -> LinkError {
        match error {
            ClientError::Broker { code, message } => LinkError::Refused { code, message },
            other => {
                for slot in &self.slots {
                    let mut slot = slot.lock().await;
                    if slot
                        .client
                        .as_ref()
                        .is_some_and(|c| c.same_connection(client))
                    {
                        slot.client = None;
                    }
                }
                LinkError::Unavailable(other.to_string())
            }
        }
    }
}

impl BrokerLink for RemoteBroker {
    fn authenticate(&self, username: String, secret: Secret) -> BoxFuture<'_, LinkResult<()>> {
        async move {
            // A connection of its own: the user's credentials, checked by the
            // broker, then closed.
            let connect = BrokerClient::connect_to(&self.endpoint, &username, secret);
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(ClientError::Broker { code, message })) => {
                    Err(LinkError::Refused { code, message })
                }
                Ok(Err(error)) => Err(LinkError::Unavailable(error.to_string())),
                Err(_) => Err(LinkError::Unavailable("the broker did not answer".into())),
            }
        }
        .boxed()
    }

    fn produce(
        &self,
        caller: Caller,
        station: String,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, LinkResult<Vec<ProduceOutcome>>> {
        self.with_client(move |client| async move {
            client
                .start_produce_as(&station, messages, caller.acting_for())
                .await?
                .await
        })
        .boxed()
    }

    fn signing_key(&self) -> BoxFuture<'_, LinkResult<Vec<u8>>> {
        self.with_client(|client| async move { Ok(client.signing_key().await?.key.to_vec()) })
            .boxed()
    }

    fn consume_token(&self, token: ConsumeToken) -> BoxFuture<'_, LinkResult<bool>> {
        self.with_client(move |client| async move { client.consume_token(token).await })
            .boxed()
    }

    fn call_as(&self, caller: Caller, op: Op) -> BoxFuture<'_, LinkResult<Reply>> {
        self.with_client(move |client| async move { client.call_as(op, caller.acting_for()).await })
            .boxed()
    }

    fn attach(&self, name: String, into: NotificationSender) -> BoxFuture<'_, LinkResult<u64>> {
        async move {
            let mut attachment = self
                .with_client(|client| async move { client.attach_proxy(&name).await })
                .await?;
            let id = attachment.id;
            tokio::spawn(async move {
                while let Some(Ok(notification)) = attachment.next().await {
                    if into.send(notification).await.is_err() {
                        return;
                    }
                }
            });
            Ok(id)
        }
        .boxed()
    }

    fn follow(
        &self,
        caller: Caller,
        station: String,
        from: FollowFrom,
        into: FollowSender,
    ) -> BoxFuture<'_, LinkResult<u64>> {
        async move {
            let start = from.to_wire();
            let subscription = self
                .with_client(|client| async move {
                    client
                        .subscribe_from(&station, start, FOLLOW_CREDIT, caller.acting_for())
                        .await
                })
                .await?;
            let start = subscription.start_offset();
            tokio::spawn(forward(subscription, into));
            Ok(start)
        }
        .boxed()
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        async move {
            self.with_client(|client| async move { client.ping().await })
                .await
                .is_ok()
        }
        .boxed()
    }
}

/// Messages the broker may push ahead of a follower.
const FOLLOW_CREDIT: u32 = 512;

/// Hands a wire subscription's batches to `into` until either side ends;
/// dropping the subscription unsubscribes.
async fn forward(mut subscription: depot_broker::client::Subscription, into: FollowSender) {
    loop {
        tokio::select! {
            batch = subscription.next_batch() => {
                let item = match batch {
                    Some(Ok(messages)) => Ok(messages),
                    Some(Err(error)) => Err(LinkError::Unavailable(error.to_string())),
                    None => Err(LinkError::Unavailable("the broker connection closed".into())),
                };
                let last = item.is_err();
                if into.send(item).await.is_err() || last {
                    return;
                }
            }
            () = into.closed() => return,
        }
    }
}
