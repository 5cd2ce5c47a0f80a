//! One wire connection: handshake, authentication, then pipelined requests.
//!
//! The read loop decodes frames and hands each request to its own task, so
//! many are in flight and answers leave in completion order; a semaphore caps
//! the requests in flight, and when it is exhausted the loop stops reading
//! (TCP backpressure) instead of queueing. A single writer task batches
//! answers into as few socket writes as it can.
//!
//! Bad input is answered where framing survives: an undecodable frame gets an
//! error with id 0, an unknown operation or a request before authentication
//! an error with its id, and the connection stays usable. An oversize frame
//! loses the framing: it is answered, then the connection closes. So does a
//! connection that has not opened its session (Hello, Authenticate) within
//! `--handshake-timeout`: without it, sockets that never speak could hold
//! every connection slot.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use futures::{FutureExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_util::{
    codec::{FramedRead, FramedWrite},
    sync::CancellationToken,
};

use depot_schemas::{
    FrameCodec, FrameError,
    wire::{
        self, ErrorCode, ProtocolVersion, Request, Response, request::Op, response::Result as Reply,
    },
};

use crate::{
    auth::{Principal, Secret},
    broker::Broker,
    error::BrokerResult,
    refusals::Limit,
    server::{
        convert, operations,
        subscription::{self, Credit},
    },
};

/// Answers queued for the writer before request tasks wait for it.
const WRITE_QUEUE: usize = 1024;
/// The server's name in `HelloOk`.
const SERVER_NAME: &str = concat!("depot-broker/", env!("CARGO_PKG_VERSION"));

type Codec = FrameCodec<Request, Response>;

enum Stage {
    AwaitingHello,
    AwaitingAuthentication,
    Ready(Arc<Principal>),
}

struct Subscription {
    credit: Arc<Credit>,
    task: JoinHandle<()>,
}

struct Session {
    broker: Broker,
    stage: Stage,
    responses: mpsc::Sender<Response>,
    in_flight: Arc<Semaphore>,
    subscriptions: HashMap<u64, Subscription>,
    /// A proxy's attachment to the WebSocket connection registry: detached
    /// (its connections removed) when this session ends.
    attachment: Option<(u64, JoinHandle<()>)>,
    /// The peer's address, for the audit trail.
    peer: Option<SocketAddr>,
}

/// Serves one connection (its two halves: a TCP stream's, or a TLS
/// session's) until the peer leaves, framing is lost or the server closes
/// (`closing`).
pub async fn serve(
    (read_half, write_half): (
        impl AsyncRead + Unpin + 'static,
        impl AsyncWrite + Unpin + 'static,
    ),
    peer: Option<SocketAddr>,
    broker: Broker,
    _connection_slot: OwnedSemaphorePermit,
    closing: CancellationToken,
) {
    let max_frame = broker.config().options.max_frame_bytes as usize;
    let mut frames = FramedRead::new(read_half, Codec::new(max_frame));
    let (responses, queue) = mpsc::channel(WRITE_QUEUE);
    let max_in_flight = broker.config().options.max_in_flight_per_connection;
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    // A request holds its permit until its answer is queued, so permits
    // taken mean answers still to come.
    let requests_in_flight = in_flight.clone();
    let writer = actix_rt::spawn(crate::frames::write_queued(
        FramedWrite::new(write_half, Codec::new(max_frame)),
        queue,
        move || requests_in_flight.available_permits() < max_in_flight,
    ));
    let mut session = Session {
        in_flight,
        broker,
        stage: Stage::AwaitingHello,
        responses,
        subscriptions: HashMap::new(),
        attachment: None,
        peer,
    };

    let closed = closing.cancelled();
    tokio::pin!(closed);
    let handshake_timeout = session.broker.config().options.handshake_timeout;
    let handshake_deadline = tokio::time::sleep(handshake_timeout);
    tokio::pin!(handshake_deadline);
    loop {
        // Frames first: the closing signal and the deadline are looked at
        // only when no frame is ready, so they cost nothing per request;
        // the deadline not at all once the session is open. A request is
        // handled before the loop comes back here, so a client whose
        // Authenticate arrived in time is never cut off while the password
        // thread works through a crowd of others.
        let frame = tokio::select! {
            biased;
            frame = frames.next() => frame,
            () = &mut closed => break,
            () = &mut handshake_deadline, if !handshake_timeout.is_zero() && !session.is_open() => {
                let message = format!(
                    "the session was not opened (Hello, then Authenticate) within {}; closing",
                    humantime::format_duration(handshake_timeout)
                );
                session.broker.refusals().count(Limit::HandshakeTimeout);
                session.answer_error(0, ErrorCode::Unauthenticated, message).await;
                break;
            }
        };
        let Some(frame) = frame else {
            break;
        };
        match frame {
            Ok(Ok(request)) => session.handle(request).await,
            Ok(Err(decode_error)) => {
                let message = format!("frame does not decode as a Request: {decode_error}");
                session
                    .answer_error(0, ErrorCode::UndecodableFrame, message)
                    .await;
            }
            Err(error @ FrameError::TooLarge { .. }) => {
                session
                    .answer_error(0, ErrorCode::FrameTooLarge, format!("{error}; closing"))
                    .await;
                break;
            }
            Err(FrameError::Io(error)) => {
                tracing::debug!(?peer, %error, "connection read failed");
                break;
            }
        }
    }

    for (_, subscription) in session.subscriptions.drain() {
        subscription.task.abort();
    }
    if let Some((attachment, pushes)) = session.attachment.take() {
        pushes.abort();
        session.broker.detach_proxy(attachment);
    }
    drop(session);
    let _ = writer.await;
    tracing::debug!(?peer, "connection closed");
}

/// Refuses a request from a session (`Request.session_issued_at_ms`, 0:
/// none) that the user it acts for has ended by changing its credentials.
/// That user is the operation's own `on_behalf_of` when it names one, else
/// `principal`, whom the request acts as.
fn check_session(
    broker: &Broker,
    principal: &Principal,
    op: &Op,
    session_issued_at_ms: u64,
) -> BrokerResult<()> {
    if session_issued_at_ms == 0 {
        return Ok(());
    }
    let inner = match op {
        Op::Produce(produce) => produce.on_behalf_of.as_str(),
        Op::Fetch(fetch) => fetch.on_behalf_of.as_str(),
        Op::Subscribe(subscribe) => subscribe.on_behalf_of.as_str(),
        _ => "",
    };
    let acted_for = if inner.is_empty() {
        principal.username.as_str()
    } else {
        inner
    };
    if acted_for != principal.username {
        // Only administrators act for others: nobody else learns here
        // whether another user's sessions are over.
        principal.require_admin()?;
    }
    broker
        .session_principal(acted_for, session_issued_at_ms)
        .map(drop)
}

impl Session {
    /// Whether Hello and Authenticate have succeeded.
    fn is_open(&self) -> bool {
        matches!(self.stage, Stage::Ready(_))
    }

    async fn handle(&mut self, request: Request) {
        let id = request.id;
        let Some(op) = request.op else {
            let message = "the request names no operation this broker knows";
            return self
                .answer_error(id, ErrorCode::UnknownOperation, message)
                .await;
        };
        let (principal, op) = match (&self.stage, op) {
            (_, Op::Ping(ping)) => {
                return self
                    .answer(
                        id,
                        Reply::Pong(wire::Pong {
                            payload: ping.payload,
                        }),
                    )
                    .await;
            }
            (Stage::AwaitingHello, Op::Hello(hello)) => return self.hello(id, hello).await,
            (Stage::AwaitingHello, _) => {
                let message = "the connection must open with Hello, then Authenticate";
                return self
                    .answer_error(id, ErrorCode::Unauthenticated, message)
                    .await;
            }
            (Stage::AwaitingAuthentication, Op::Authenticate(credentials)) => {
                return self.authenticate(id, credentials).await;
            }
            (Stage::AwaitingAuthentication, _) => {
                let message = "authenticate first";
                return self
                    .answer_error(id, ErrorCode::Unauthenticated, message)
                    .await;
            }
            (Stage::Ready(_), Op::Hello(_) | Op::Authenticate(_)) => {
                let message = "the session is already open";
                return self.answer_error(id, ErrorCode::BadRequest, message).await;
            }
            (Stage::Ready(principal), op) => (principal.clone(), op),
        };
        // Where the request comes from, for the audit trail: the client a
        // proxy (an administrator) names when it acts for someone, else
        // this connection's peer.
        let from = if !request.on_behalf_of.is_empty()
            && !request.client_address.is_empty()
            && principal.require_admin().is_ok()
        {
            request.client_address.clone()
        } else {
            self.peer.map(|peer| peer.to_string()).unwrap_or_default()
        };
        let principal = match self
            .broker
            .acting_as(&principal, &request.on_behalf_of)
            .and_then(|principal| {
                check_session(&self.broker, &principal, &op, request.session_issued_at_ms)
                    .map(|()| principal)
            }) {
            Ok(principal) => principal,
            Err(e) => {
                return self
                    .answer(id, Reply::Error(convert::broker_error(&e)))
                    .await;
            }
        };
        match op {
            Op::Subscribe(subscribe) => self.subscribe(id, &principal, subscribe).await,
            Op::Credit(credit) => self.credit(id, credit).await,
            Op::Unsubscribe(unsubscribe) => self.unsubscribe(id, unsubscribe).await,
            Op::AttachProxy(attach) => self.attach_proxy(id, &principal, attach).await,
            op => self.spawn_operation(id, principal, from, op).await,
        }
    }

    async fn hello(&mut self, id: u64, hello: wire::Hello) {
        if hello.version != ProtocolVersion::V1 as i32 {
            let message = format!(
                "protocol version {} is not supported; this broker speaks version 1",
                hello.version
            );
            return self
                .answer_error(id, ErrorCode::UnsupportedVersion, message)
                .await;
        }
        self.stage = Stage::AwaitingAuthentication;
        let ok = wire::HelloOk {
            version: ProtocolVersion::V1 as i32,
            server: SERVER_NAME.to_owned(),
            max_frame_bytes: self.broker.config().options.max_frame_bytes,
        };
        self.answer(id, Reply::HelloOk(ok)).await;
    }

    async fn authenticate(&mut self, id: u64, credentials: wire::Authenticate) {
        let secret = match (credentials.password, credentials.connection_token) {
            (password, token) if !password.is_empty() && token.is_empty() => {
                Secret::Password(password)
            }
            (password, token) if password.is_empty() && !token.is_empty() => {
                Secret::ConnectionToken(token)
            }
            _ => {
                let message = "authenticate with either a password or a connection token";
                return self.answer_error(id, ErrorCode::BadRequest, message).await;
            }
        };
        match self
            .broker
            .authenticate(&credentials.username, secret)
            .await
        {
            Ok(principal) => {
                let ok = wire::AuthenticateOk {
                    username: principal.username.clone(),
                };
                self.stage = Stage::Ready(Arc::new(principal));
                self.answer(id, Reply::AuthenticateOk(ok)).await;
            }
            Err(e) => {
                self.answer(id, Reply::Error(convert::broker_error(&e)))
                    .await
            }
        }
    }

    /// Runs a request in its own task so that answers can overtake each other.
    async fn spawn_operation(&mut self, id: u64, principal: Arc<Principal>, from: String, op: Op) {
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let responses = self.responses.clone();
        // A produce is handed to its station here, in the read loop, so one
        // connection's produces are stored in the order it sent them; only
        // the wait for durability runs in the task.
        let reply = match op {
            Op::Produce(produce) => {
                let started = operations::start_produce(&self.broker, &principal, produce).await;
                operations::finish_produce(started).boxed_local()
            }
            op => {
                let broker = self.broker.clone();
                async move { operations::run(&broker, &principal, &from, op).await }.boxed_local()
            }
        };
        actix_rt::spawn(async move {
            let result = Some(reply.await);
            let _ = responses.send(Response { id, result }).await;
            drop(permit);
        });
    }

    async fn subscribe(&mut self, id: u64, principal: &Arc<Principal>, subscribe: wire::Subscribe) {
        // Subscriptions whose station was deleted have ended by themselves.
        self.subscriptions.retain(|_, s| !s.task.is_finished());
        let limit = self
            .broker
            .config()
            .options
            .max_subscriptions_per_connection;
        if self.subscriptions.len() >= limit {
            let message = format!("this connection already holds {limit} subscriptions, the limit");
            return self
                .answer_error(id, ErrorCode::LimitExceeded, message)
                .await;
        }
        if self.subscriptions.contains_key(&id) {
            let message = format!("subscription id {id} is already in use on this connection");
            return self.answer_error(id, ErrorCode::BadRequest, message).await;
        }
        let station = match self
            .broker
            .acting_as(principal, &subscribe.on_behalf_of)
            .and_then(|reader| self.broker.station_for_reading(&reader, &subscribe.station))
        {
            Ok(station) => station,
            Err(e) => {
                return self
                    .answer(id, Reply::Error(convert::broker_error(&e)))
                    .await;
            }
        };
        let head = *station.durable_head.borrow();
        let start = match subscribe.start {
            Some(wire::subscribe::Start::FromOffset(offset)) => offset,
            Some(wire::subscribe::Start::Latest(_)) | None => head,
            Some(wire::subscribe::Start::Consumer(consumer)) => {
                match self.broker.consumer_start(&station, &consumer) {
                    Ok(offset) => offset,
                    Err(e) => {
                        return self
                            .answer(id, Reply::Error(convert::broker_error(&e)))
                            .await;
                    }
                }
            }
        };
        self.answer(
            id,
            Reply::SubscribeOk(wire::SubscribeOk {
                start_offset: start,
            }),
        )
        .await;
        let credit = Arc::new(Credit::default());
        credit.grant(u64::from(subscribe.initial_credit));
        let task = actix_rt::spawn(subscription::push(
            id,
            station,
            start,
            credit.clone(),
            self.responses.clone(),
        ));
        self.subscriptions.insert(id, Subscription { credit, task });
    }

    /// Attaches this session's proxy to the connection registry and pushes
    /// its notifications under the request's id until the session ends.
    async fn attach_proxy(
        &mut self,
        id: u64,
        principal: &Arc<Principal>,
        attach: wire::AttachProxy,
    ) {
        if self.attachment.is_some() {
            let message = "this session is already attached";
            return self.answer_error(id, ErrorCode::BadRequest, message).await;
        }
        let (attachment, mut notifications) = match self.broker.attach_proxy(principal, attach.name)
        {
            Ok(attached) => attached,
            Err(e) => {
                return self
                    .answer(id, Reply::Error(convert::broker_error(&e)))
                    .await;
            }
        };
        self.answer(id, Reply::ProxyAttached(wire::ProxyAttached { attachment }))
            .await;
        let responses = self.responses.clone();
        let pushes = actix_rt::spawn(async move {
            while let Some(notification) = notifications.recv().await {
                let result = Some(Reply::Notification(wire::Notification {
                    connections: notification.connections,
                    data: notification.data,
                    sessions_ended_before_ms: notification.sessions_ended_before_ms,
                }));
                if responses.send(Response { id, result }).await.is_err() {
                    return;
                }
            }
        });
        self.attachment = Some((attachment, pushes));
    }

    async fn credit(&mut self, id: u64, credit: wire::Credit) {
        match self.subscriptions.get(&credit.subscription) {
            Some(subscription) => subscription.credit.grant(u64::from(credit.messages)),
            None => self.no_such_subscription(id, credit.subscription).await,
        }
    }

    async fn unsubscribe(&mut self, id: u64, unsubscribe: wire::Unsubscribe) {
        match self.subscriptions.remove(&unsubscribe.subscription) {
            Some(subscription) => {
                subscription.task.abort();
                self.answer(id, Reply::Done(wire::Done {})).await;
            }
            None => {
                self.no_such_subscription(id, unsubscribe.subscription)
                    .await
            }
        }
    }

    async fn no_such_subscription(&mut self, id: u64, subscription: u64) {
        let message = format!("no subscription {subscription} on this connection");
        self.answer_error(id, ErrorCode::SubscriptionNotFound, message)
            .await;
    }

    async fn answer_error(&mut self, id: u64, code: ErrorCode, message: impl Into<String>) {
        self.answer(id, Reply::Error(convert::error(code, message)))
            .await;
    }

    async fn answer(&mut self, id: u64, result: Reply) {
        let _ = self
            .responses
            .send(Response {
                id,
                result: Some(result),
            })
            .await;
    }
}
