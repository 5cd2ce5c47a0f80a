//! One WebSocket connection: a reader loop that routes the client's frames
//! by action, a writer task that drains a bounded outbound queue into the
//! socket, and a task per station subscription feeding that queue.
//!
//! A client that does not keep up fills the queue; it is then closed with a
//! reason instead of making the proxy buffer without bound. Idle clients
//! (no frame, not even a pong, for the idle timeout) are closed too; the
//! server pings at the ping interval.

use std::{
    cell::Cell,
    collections::HashMap,
    rc::Rc,
    time::{Duration, Instant},
};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytestring::ByteString;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use depot_schemas::wire::{
    self, Header, NewMessage, produce_outcome::Outcome, request::Op, response::Result as Reply,
};

use crate::{
    broker_link::Caller,
    routes::AppState,
    tokens::{Claims, TokenType},
    ws::{
        WsLimits,
        hub::session_ends,
        protocol::{self, Action, From},
    },
};

/// What the writer task sends.
enum Outbound {
    Text(ByteString),
    Pong(bytes::Bytes),
    Ping,
}

/// The socket's sending side as the rest of the connection sees it: a
/// bounded queue, and a signal that it overflowed.
#[derive(Clone)]
struct Outbox {
    queue: mpsc::Sender<Outbound>,
    /// How long a frame may wait for room in a full queue.
    patience: Duration,
    overflowed: Rc<Notify>,
    closed: Rc<Cell<bool>>,
}

impl Outbox {
    /// Queues a frame, waiting while the queue is full; a queue that stays
    /// full for the patience marks the client too slow. False when the
    /// connection is done for.
    async fn send(&self, frame: Value) -> bool {
        self.push(Outbound::Text(frame.to_string().into())).await
    }

    /// Queues a frame serialised once for many connections.
    async fn send_shared(&self, frame: ByteString) -> bool {
        self.push(Outbound::Text(frame)).await
    }

    /// The client lost frames (it fell behind a shared feed): too slow.
    fn mark_slow(&self) {
        if !self.closed.replace(true) {
            self.overflowed.notify_one();
        }
    }

    async fn push(&self, item: Outbound) -> bool {
        if self.closed.get() {
            return false;
        }
        match tokio::time::timeout(self.patience, self.queue.send(item)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                if !self.closed.replace(true) {
                    self.overflowed.notify_one();
                }
                false
            }
        }
    }
}

/// Who the connection acts for, once authorized.
struct Authorized {
    /// The token's user, in the token's session.
    caller: Caller,
    /// When the access token expires: the connection closes then.
    expires_at: Instant,
}

pub struct Connection {
    pub id: String,
    state: actix_web::web::Data<AppState>,
    limits: WsLimits,
    user: Option<Authorized>,
    subscriptions: HashMap<String, actix_web::rt::task::JoinHandle<()>>,
}

fn close(code: CloseCode, description: impl Into<String>) -> Option<CloseReason> {
    Some(CloseReason {
        code,
        description: Some(description.into()),
    })
}

impl Authorized {
    fn of_token(claims: &Claims) -> Self {
        Self {
            caller: Caller::of_token(claims),
            expires_at: claims.expires_at(),
        }
    }
}

impl Connection {
    pub fn new(
        state: actix_web::web::Data<AppState>,
        limits: WsLimits,
        token: Option<&Claims>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            state,
            limits,
            user: token.map(Authorized::of_token),
            subscriptions: HashMap::new(),
        }
    }

    /// Serves the connection until either side closes it.
    pub async fn run(mut self, session: Session, mut stream: AggregatedMessageStream) {
        let (queue, outbound) = mpsc::channel(self.limits.send_buffer);
        let outbox = Outbox {
            queue,
            patience: self.limits.slow_timeout,
            overflowed: Rc::new(Notify::new()),
            closed: Rc::new(Cell::new(false)),
        };
        let writer = actix_web::rt::spawn(write(session.clone(), outbound));
        // Notifications for this connection, and the word that its user's
        // sessions before some time are over, once it is authorized.
        let mut notifications = None;
        let mut sessions_ended = None;
        if let Some(user) = &self.user {
            outbox.send(self.welcome()).await;
            let joined = self.state.hub.join(&self.id, &user.caller.user).await;
            notifications = Some(joined.notifications);
            sessions_ended = Some(joined.sessions_ended);
        }
        let opened = Instant::now();
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(self.limits.ping_interval);
        ping.reset();
        let reason = loop {
            let authorize_by = opened + self.limits.authorize_timeout;
            let expires_at = self.user.as_ref().map(|u| u.expires_at);
            let session_issued_at_ms = self
                .user
                .as_ref()
                .and_then(|u| u.caller.session_issued_at_ms)
                .unwrap_or(0);
            tokio::select! {
                frame = stream.recv() => {
                    last_heard = Instant::now();
                    match frame {
                        None => break None,
                        Some(Err(error)) => {
                            break close(CloseCode::Protocol, protocol_error(&error, self.limits.max_frame));
                        }
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            if let Some(reason) = self.on_text(&text, &outbox).await {
                                break reason;
                            }
                            if let (None, Some(user)) = (&notifications, &self.user) {
                                let joined = self.state.hub.join(&self.id, &user.caller.user).await;
                                notifications = Some(joined.notifications);
                                sessions_ended = Some(joined.sessions_ended);
                            }
                        }
                        Some(Ok(AggregatedMessage::Binary(_))) => {
                            outbox.send(protocol::error("binary frames are not supported: send JSON text frames")).await;
                        }
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            outbox.push(Outbound::Pong(bytes)).await;
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => {}
                        Some(Ok(AggregatedMessage::Close(_))) => break None,
                    }
                }
                Some(data) = recv_some(&mut notifications) => {
                    let data = serde_json::from_slice::<Value>(&data).unwrap_or(Value::Null);
                    outbox.send(json!({ "action": "notification", "data": data })).await;
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > self.limits.idle_timeout {
                        break close(CloseCode::Policy, "idle: no frame and no pong within the idle timeout");
                    }
                    outbox.push(Outbound::Ping).await;
                }
                () = outbox.overflowed.notified() => {
                    break close(CloseCode::Policy, format!(
                        "too slow: {} frames waited more than {:?} to be sent",
                        self.limits.send_buffer, self.limits.slow_timeout
                    ));
                }
                () = tokio::time::sleep_until(authorize_by.into()), if self.user.is_none() => {
                    break close(CloseCode::Policy, "not authorized in time: send {\"action\":\"authorize\",\"token\":...} first");
                }
                () = sleep_until_some(expires_at) => {
                    break close(CloseCode::Policy, "the access token expired: reconnect with a new one");
                }
                () = session_ends(&mut sessions_ended, session_issued_at_ms) => {
                    break close(CloseCode::Policy, "the session is over: the user's password or connection token changed, or the user was deleted; authenticate again");
                }
                () = self.state.closing.cancelled() => {
                    break close(CloseCode::Away, "the proxy is shutting down: reconnect");
                }
            }
        };
        if let Some(closed) = &reason {
            self.state
                .metrics
                .ws_closed
                .with_label_values(&[close_kind(closed)])
                .inc();
        }
        for (_, subscription) in self.subscriptions.drain() {
            subscription.abort();
        }
        if notifications.is_some() {
            self.state.hub.leave(&self.id).await;
        }
        writer.abort();
        let _ = session.close(reason).await;
    }

    fn welcome(&self) -> Value {
        json!({
            "action": "connected",
            "connection": self.id,
            "user": self.user.as_ref().map(|u| u.caller.user.clone()),
        })
    }

    /// Handles one text frame; `Some(reason)` closes the connection.
    async fn on_text(&mut self, text: &str, outbox: &Outbox) -> Option<Option<CloseReason>> {
        let (action, id) = match protocol::parse(text) {
            Ok(parsed) => parsed,
            Err((reason, id)) => {
                outbox
                    .send(protocol::with_id(protocol::error(reason), &id))
                    .await;
                return None;
            }
        };
        let reply = match (&self.user, action) {
            (None, Action::Authorize { token }) => {
                match self.state.tokens.verify(&token, TokenType::Access).await {
                    Ok(claims) => {
                        self.user = Some(Authorized::of_token(&claims));
                        self.welcome()
                    }
                    Err(error) => {
                        let reason = format!("authorization failed: {error}");
                        return Some(close(CloseCode::Policy, reason));
                    }
                }
            }
            (Some(_), Action::Authorize { .. }) => protocol::error("already authorized"),
            (None, _) => {
                return Some(close(
                    CloseCode::Policy,
                    "not authorized: send {\"action\":\"authorize\",\"token\":...} first",
                ));
            }
            (Some(_), Action::Ping(fields)) => protocol::pong(fields),
            (
                Some(_),
                Action::Subscribe {
                    station,
                    from,
                    filter,
                },
            ) => self.subscribe(station, from, filter, outbox).await,
            (
                Some(user),
                Action::Commit {
                    station,
                    consumer,
                    next_offset,
                },
            ) => {
                let op = Op::CommitPosition(wire::CommitPosition {
                    station,
                    consumer,
                    next_offset,
                });
                match self.state.link.call_as(user.caller.clone(), op).await {
                    Ok(Reply::Consumer(info)) => json!({
                        "action": "committed",
                        "station": info.station,
                        "consumer": info.consumer,
                        "next_offset": info.next_offset,
                        "lag": info.lag,
                    }),
                    Ok(_) => protocol::error("the broker answered a commit with something else"),
                    Err(error) => protocol::error(error.to_string()),
                }
            }
            (Some(_), Action::Unsubscribe { station }) => match self.subscriptions.remove(&station)
            {
                Some(task) => {
                    task.abort();
                    json!({ "action": "unsubscribed", "station": station })
                }
                None => protocol::error(format!("not subscribed to {station}")),
            },
            (
                Some(user),
                Action::Produce {
                    station,
                    content_type,
                    payload,
                    headers,
                },
            ) => {
                let message = NewMessage {
                    msg_id: String::new(),
                    headers: headers
                        .into_iter()
                        .map(|(key, value)| Header { key, value })
                        .collect(),
                    content_type: content_type.to_owned(),
                    payload: payload.into(),
                };
                let produced = self
                    .state
                    .link
                    .produce(user.caller.clone(), station.clone(), vec![message])
                    .await;
                match produced.map(|o| o.into_iter().next().and_then(|o| o.outcome)) {
                    Ok(Some(Outcome::Offset(offset))) => {
                        json!({ "action": "produced", "station": station, "offset": offset })
                    }
                    Ok(Some(Outcome::DuplicateOf(offset))) => json!({
                        "action": "produced", "station": station, "offset": offset, "duplicate": true,
                    }),
                    Ok(Some(Outcome::Error(error))) => protocol::error(error.message),
                    Ok(None) => protocol::error("the broker gave no outcome"),
                    Err(error) => protocol::error(error.to_string()),
                }
            }
            (Some(_), Action::Unknown(action)) => {
                protocol::error(format!("action '{action}' is not implemented"))
            }
        };
        outbox.send(protocol::with_id(reply, &id)).await;
        None
    }

    async fn subscribe(
        &mut self,
        station: String,
        from: From,
        filter: Vec<(String, String)>,
        outbox: &Outbox,
    ) -> Value {
        if self.subscriptions.contains_key(&station) {
            return protocol::error(format!("already subscribed to {station}"));
        }
        if self.subscriptions.len() >= self.limits.max_subscriptions {
            return protocol::error(format!(
                "at most {} subscriptions per connection",
                self.limits.max_subscriptions
            ));
        }
        let user = self.user.as_ref().expect("authorized").caller.clone();
        if from == From::Latest {
            return self.subscribe_latest(user, station, filter, outbox).await;
        }
        let (into, mut batches) = mpsc::channel(2);
        let start = match self
            .state
            .link
            .follow(user, station.clone(), from, into)
            .await
        {
            Ok(start) => start,
            Err(error) => return protocol::error(error.to_string()),
        };
        let (outbox, name) = (outbox.clone(), station.clone());
        let task = actix_web::rt::spawn(async move {
            while let Some(batch) = batches.recv().await {
                let messages = match batch {
                    Ok(messages) => messages,
                    Err(error) => {
                        let ended = format!("the subscription to {name} ended: {error}");
                        let frame = json!({ "action": "error", "station": name, "error": ended });
                        outbox.send(frame).await;
                        return;
                    }
                };
                for message in &messages {
                    let wanted = filter.iter().all(|(key, value)| {
                        message
                            .headers
                            .iter()
                            .any(|h| h.key.eq_ignore_ascii_case(key) && &h.value == value)
                    });
                    if wanted && !outbox.send(protocol::message(&name, message)).await {
                        return;
                    }
                }
            }
        });
        self.subscriptions.insert(station.clone(), task);
        json!({ "action": "subscribed", "station": station, "from": start })
    }
}

/// The next item of a receiver that may not exist yet (never, if not).
async fn recv_some<T>(receiver: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    /// From the latest message: a place on the station's shared feed.
    async fn subscribe_latest(
        &mut self,
        user: Caller,
        station: String,
        filter: Vec<(String, String)>,
        outbox: &Outbox,
    ) -> Value {
        // On the feed first, then the user's right and the start offset:
        // nothing at or after it is missed (see `fanout`).
        let mut feed = match self.state.fanout.receiver(&self.state.link, &station).await {
            Ok(feed) => feed,
            Err(error) => return protocol::error(error),
        };
        let (check, _) = mpsc::channel(1);
        let start = match self
            .state
            .link
            .follow(user, station.clone(), From::Latest, check)
            .await
        {
            Ok(start) => start,
            Err(error) => return protocol::error(error.to_string()),
        };
        let outbox = outbox.clone();
        let task = actix_web::rt::spawn(async move {
            loop {
                let pushed = match feed.recv().await {
                    Ok(pushed) => pushed,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        outbox.mark_slow();
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if pushed.ended {
                    outbox.send_shared(pushed.frame.clone()).await;
                    return;
                }
                let wanted = pushed.offset >= start
                    && filter.iter().all(|(key, value)| {
                        pushed
                            .headers
                            .iter()
                            .any(|(k, v)| k.eq_ignore_ascii_case(key) && v == value)
                    });
                if wanted && !outbox.send_shared(pushed.frame.clone()).await {
                    return;
                }
            }
        });
        self.subscriptions.insert(station.clone(), task);
        json!({ "action": "subscribed", "station": station, "from": start })
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Drains the outbound queue into the socket.
async fn write(mut session: Session, mut outbound: mpsc::Receiver<Outbound>) {
    while let Some(item) = outbound.recv().await {
        let sent = match item {
            Outbound::Text(text) => session.text(text).await,
            Outbound::Pong(bytes) => session.pong(&bytes).await,
            Outbound::Ping => session.ping(b"depot").await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// A close reason as a metric label.
fn close_kind(reason: &CloseReason) -> &'static str {
    let description = reason.description.as_deref().unwrap_or("");
    if reason.code == CloseCode::Protocol {
        "protocol"
    } else if reason.code == CloseCode::Away {
        "shutdown"
    } else if description.starts_with("too slow") {
        "slow"
    } else if description.starts_with("idle") {
        "idle"
    } else if description.contains("expired") {
        "token_expired"
    } else if description.starts_with("the session is over") {
        "session_ended"
    } else {
        "unauthorized"
    }
}

fn protocol_error(error: &actix_ws::ProtocolError, max_frame: usize) -> String {
    match error {
        actix_ws::ProtocolError::Overflow => {
            format!("frame too large: at most {max_frame} bytes")
        }
        other => format!("protocol error: {other}"),
    }
}
