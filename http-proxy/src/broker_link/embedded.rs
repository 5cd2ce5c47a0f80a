//! The broker in this process: calls go straight to the core.
//!
//! The broker opens after the HTTP server's workers have started, because it
//! runs its station actors on them ([`Broker::open_on`]); calls that arrive
//! in between wait for it.

use std::sync::Arc;

use futures::{FutureExt, future::BoxFuture};
use tokio::sync::watch;

use depot_broker::{
    Broker, BrokerError,
    auth::{Principal, ROOT_USER},
    client::Secret,
    server::{convert, operations},
    station::{ReadLimits, StationHandle},
};
use depot_schemas::wire::{
    ConsumeToken, ErrorCode, NewMessage, ProduceOutcome, request::Op, response::Result as Reply,
};

use super::{
    BrokerLink, Caller, FollowFrom, FollowSender, LinkError, LinkResult, NotificationSender,
};

/// Messages (and bytes of payload) pushed at a time by `follow`.
const FOLLOW_BATCH: ReadLimits = ReadLimits {
    max_messages: 256,
    max_bytes: 1024 * 1024,
};

pub struct EmbeddedBroker {
    opened: watch::Receiver<Option<Broker>>,
}

/// Hands the embedded link its broker once it is open.
pub struct BrokerSlot(watch::Sender<Option<Broker>>);

impl BrokerSlot {
    pub fn fill(self, broker: Broker) {
        // Nobody listening is fine: the link was dropped, so was the server.
        let _ = self.0.send(Some(broker));
    }
}

impl EmbeddedBroker {
    /// A link whose broker comes later, through the slot.
    pub fn deferred() -> (Self, BrokerSlot) {
        let (slot, opened) = watch::channel(None);
        (Self { opened }, BrokerSlot(slot))
    }

    /// The broker, once open.
    async fn broker(&self) -> LinkResult<Broker> {
        if let Some(broker) = &*self.opened.borrow() {
            return Ok(broker.clone());
        }
        let mut opened = self.opened.clone();
        let broker = opened
            .wait_for(Option::is_some)
            .await
            .map_err(|_| LinkError::Unavailable("the embedded broker did not open".into()))?;
        Ok(broker.clone().expect("waited for it"))
    }
}

/// The caller's current principal, refused when its session is over (as
/// the wire server refuses it for a remote proxy).
fn principal(broker: &Broker, caller: &Caller) -> LinkResult<Arc<Principal>> {
    match caller.session_issued_at_ms {
        Some(issued_at_ms) => broker.session_principal(&caller.user, issued_at_ms),
        None => broker.principal(&caller.user),
    }
    .map_err(refused)
}

fn refused(error: BrokerError) -> LinkError {
    LinkError::Refused {
        code: convert::error_code(&error),
        message: error.to_string(),
    }
}

impl BrokerLink for EmbeddedBroker {
    fn authenticate(&self, username: String, secret: Secret) -> BoxFuture<'_, LinkResult<()>> {
        async move {
            self.broker()
                .await?
                .authenticate(&username, secret)
                .await
                .map(drop)
                .map_err(refused)
        }
        .boxed()
    }

    fn produce(
        &self,
        caller: Caller,
        station: String,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, LinkResult<Vec<ProduceOutcome>>> {
        async move {
            let broker = self.broker().await?;
            let producer = principal(&broker, &caller)?;
            let messages = messages.into_iter().map(convert::new_message).collect();
            let outcomes = broker
                .produce(&producer, &station, messages)
                .await
                .map_err(refused)?;
            Ok(outcomes.into_iter().map(convert::produce_outcome).collect())
        }
        .boxed()
    }

    fn signing_key(&self) -> BoxFuture<'_, LinkResult<Vec<u8>>> {
        async move {
            let broker = self.broker().await?;
            let root = broker.principal(ROOT_USER).map_err(refused)?;
            broker.signing_key(&root).map_err(refused)
        }
        .boxed()
    }

    fn call_as(&self, caller: Caller, op: Op) -> BoxFuture<'_, LinkResult<Reply>> {
        async move {
            let broker = self.broker().await?;
            let who = principal(&broker, &caller)?;
            // The wire server's own dispatch: one implementation of every
            // operation, whichever edge it arrives through.
            let from = caller.address.as_deref().unwrap_or("");
            match operations::run(&broker, &who, from, op).await {
                Reply::Error(error) => Err(LinkError::Refused {
                    code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified),
                    message: error.message,
                }),
                reply => Ok(reply),
            }
        }
        .boxed()
    }

    fn consume_token(&self, token: ConsumeToken) -> BoxFuture<'_, LinkResult<bool>> {
        async move {
            let broker = self.broker().await?;
            let root = broker.principal(ROOT_USER).map_err(refused)?;
            broker
                .consume_token(&root, &convert::spent_token(token))
                .await
                .map_err(refused)
        }
        .boxed()
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        let open = self.opened.borrow().is_some();
        async move { open }.boxed()
    }

    fn attach(&self, name: String, into: NotificationSender) -> BoxFuture<'_, LinkResult<u64>> {
        async move {
            let broker = self.broker().await?;
            let root = broker.principal(ROOT_USER).map_err(refused)?;
            let (id, mut pushes) = broker.attach_proxy(&root, name).map_err(refused)?;
            tokio::spawn(async move {
                while let Some(notification) = pushes.recv().await {
                    let notification = depot_schemas::wire::Notification {
                        connections: notification.connections,
                        data: notification.data,
                        sessions_ended_before_ms: notification.sessions_ended_before_ms,
                    };
                    if into.send(notification).await.is_err() {
                        break;
                    }
                }
                broker.detach_proxy(id);
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
            let broker = self.broker().await?;
            let reader = principal(&broker, &caller)?;
            let handle = broker
                .station_for_reading(&reader, &station)
                .map_err(refused)?;
            let start = match from {
                FollowFrom::Latest => *handle.durable_head.borrow(),
                FollowFrom::Offset(offset) => offset,
                FollowFrom::Consumer(consumer) => {
                    broker.consumer_start(&handle, &consumer).map_err(refused)?
                }
            };
            tokio::spawn(follow_station(handle, start, into));
            Ok(start)
        }
        .boxed()
    }
}

/// Pushes the station's messages from `cursor` on, woken by its durable
/// head, until `into` closes or the station goes away.
async fn follow_station(station: StationHandle, mut cursor: u64, into: FollowSender) {
    let mut head = station.durable_head.clone();
    loop {
        if *head.borrow_and_update() <= cursor {
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        let gone = BrokerError::StationNotFound { name: station.name.to_string() };
                        let _ = into.send(Err(refused(gone))).await;
                        return;
                    }
                }
                () = into.closed() => return,
            }
            continue;
        }
        match station.read(cursor, FOLLOW_BATCH) {
            Ok((batch, _)) => {
                cursor = batch.next_offset;
                if batch.messages.is_empty() {
                    continue;
                }
                let messages = batch
                    .messages
                    .into_iter()
                    .map(convert::stored_message)
                    .collect();
                if into.send(Ok(messages)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = into.send(Err(refused(error))).await;
                return;
            }
        }
    }
}
