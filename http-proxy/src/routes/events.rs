//! `GET /stations/{name}/events`: a station followed as Server-Sent Events,
//! for pages that only listen. A browser's `EventSource` reconnects by
//! itself and says where it was (`Last-Event-ID`, the last offset it got),
//! so a page resumes without losing or repeating a message, with no
//! protocol of its own.
//!
//! - Each message is one event: `id:` its offset, `data:` the WebSocket
//!   push of the message (`{"action":"message", ...}`, the view of
//!   [`crate::message_view`]).
//! - Where it starts: after `Last-Event-ID` (a reconnect), else `?from=`,
//!   else where `?consumer=` left off (its committed position: the page
//!   commits with `PUT /stations/{name}/consumers/{consumer}` once it has
//!   handled events), else at the next message. From the next message, every stream of a
//!   station shares the WebSockets' feed ([`crate::ws::fanout`]: the
//!   station is read and each message serialised once for all); a stream
//!   that falls behind the feed's buffer ends as too slow, and its
//!   reconnect resumes from its offset on a follow of its own.
//! - Notifications for the token's user (`POST /users/{user}/notify`)
//!   arrive as `event: notification`: the stream is a connection in the
//!   broker's registry, as a WebSocket is.
//! - It ends with `event: end` (`data: {"error": ...}`) when the token
//!   expires, the user's sessions are ended, the station goes away or the
//!   proxy shuts down; `EventSource` then reconnects and a refusal (401,
//!   403, 404, all before the stream starts) stops it for good.
//! - A comment line every `--sse-keepalive` keeps idle streams open
//!   through other proxies and finds clients that went away.
//! - At most `--sse-max-streams` per proxy (503 beyond). A client that
//!   reads slowly holds the station's reading back (the follow is bounded),
//!   never the proxy's memory.

use std::{
    convert::Infallible,
    time::{Duration, Instant},
};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use tokio::sync::broadcast::error::RecvError;

use depot_schemas::wire::StoredMessage;

use crate::{
    broker_link::{Caller, FollowFrom, LinkResult},
    error::ProxyError,
    routes::{AppState, bearer_token},
    tokens::TokenType,
    ws::{fanout::FeedReceiver, hub::session_ends, protocol},
};

/// Chunks waiting for the client, at most: the writer task waits beyond it.
const OUTBOX: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The first offset wanted (default: the next message).
    #[serde(default)]
    from: Option<u64>,
    /// Start where this consumer left off instead (not with `from`).
    #[serde(default)]
    consumer: Option<String>,
    /// The access token, when it comes in the query (browsers).
    #[serde(default, rename = "authorization")]
    _authorization: Option<String>,
}

pub async fn follow(
    request: HttpRequest,
    station: web::Path<String>,
    query: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let token = bearer_token(&request).ok_or_else(|| {
        ProxyError::Unauthorized(
            "an access token is required: ?authorization=<jwt> or Authorization: Bearer <jwt>"
                .into(),
        )
    })?;
    let claims = state.tokens.verify(&token, TokenType::Access).await?;
    let query = query.into_inner();
    let from = start(last_event_id(&request)?, query.from, query.consumer)?;
    let limit = state.config.sse_max_streams;
    let place = state.sse_streams.take(limit).ok_or_else(|| {
        ProxyError::Unavailable(format!(
            "this proxy holds its maximum of {limit} event streams (--sse-max-streams)"
        ))
    })?;
    let caller = Caller::of_token(&claims);
    let station = station.into_inner();
    // On the shared feed first (from the next message), then the caller's
    // right and the start offset, so nothing from there on is missed.
    // Refusals (rights, unknown station) come here, before any byte of
    // the stream: EventSource then stops instead of reconnecting.
    // (A feed that cannot start leaves the follow below to say why, or,
    // should it succeed after all, to be the source.)
    let feed = match from {
        FollowFrom::Latest => state.fanout.receiver(&state.link, &station).await.ok(),
        FollowFrom::Offset(_) | FollowFrom::Consumer(_) => None,
    };
    let (into, batches) = mpsc::channel(2);
    let start = state
        .link
        .follow(caller.clone(), station.clone(), from, into)
        .await?;
    let source = match feed {
        // The follow only checked the right and named the start.
        Some(feed) => Source::Feed { feed, start },
        None => Source::Follow(batches),
    };
    let stream = Stream {
        id: format!("sse-{}", uuid::Uuid::now_v7()),
        caller,
        station,
        expires_at: claims.expires_at(),
    };
    let (outbox, chunks) = mpsc::channel::<Bytes>(OUTBOX);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        stream.run(&state, start, source, outbox).await;
        drop(place);
    });
    let body = futures::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<_, Infallible>(chunk), chunks))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Tells nginx and its kind not to hold events back.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

/// Where a stream starts. A reconnect's `Last-Event-ID` wins over the
/// query, which named where the first connection started: resuming after
/// the last event received repeats nothing, even for a consumer whose
/// page has not committed it yet.
fn start(
    last_event_id: Option<u64>,
    from: Option<u64>,
    consumer: Option<String>,
) -> Result<FollowFrom, ProxyError> {
    if from.is_some() && consumer.is_some() {
        return Err(ProxyError::bad_request(
            "follow from an offset (from=) or from a consumer's position (consumer=), not both",
        ));
    }
    Ok(match (last_event_id, from, consumer) {
        (Some(last), _, _) => FollowFrom::Offset(last.saturating_add(1)),
        (None, Some(offset), _) => FollowFrom::Offset(offset),
        (None, None, Some(consumer)) => FollowFrom::Consumer(consumer),
        (None, None, None) => FollowFrom::Latest,
    })
}

/// The offset in `Last-Event-ID`, which `EventSource` sends when it
/// reconnects; an id that is not an offset is 400.
fn last_event_id(request: &HttpRequest) -> Result<Option<u64>, ProxyError> {
    let Some(value) = request.headers().get("last-event-id") else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    value
        .parse()
        .map(Some)
        .map_err(|_| ProxyError::bad_request(format!("Last-Event-ID '{value}' is not an offset")))
}

/// Where a stream's messages come from.
enum Source {
    /// A follow of its own, from an offset.
    Follow(mpsc::Receiver<LinkResult<Vec<StoredMessage>>>),
    /// The station's shared feed, from `start` on.
    Feed { feed: FeedReceiver, start: u64 },
}

impl Source {
    /// The next chunk of events, or why the stream ends.
    async fn next(&mut self, station: &str) -> Result<Bytes, String> {
        match self {
            Source::Follow(batches) => match batches.recv().await {
                Some(Ok(messages)) => Ok(events(station, &messages)),
                Some(Err(error)) => Err(format!("the stream of {station} ended: {error}")),
                None => Err("the station's stream ended".into()),
            },
            Source::Feed { feed, start } => loop {
                match feed.recv().await {
                    Ok(pushed) if pushed.ended => {
                        return Err(format!("the stream of {station} ended"));
                    }
                    Ok(pushed) if pushed.offset >= *start => {
                        let event = format!("id: {}\ndata: {}\n\n", pushed.offset, pushed.frame);
                        return Ok(Bytes::from(event));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        return Err(
                            "too slow: the stream fell behind the station; reconnect to resume"
                                .into(),
                        );
                    }
                    Err(RecvError::Closed) => return Err("the station's stream ended".into()),
                }
            },
        }
    }
}

/// One event per message, in one chunk.
fn events(station: &str, messages: &[StoredMessage]) -> Bytes {
    let mut chunk = String::new();
    for message in messages {
        let data = protocol::message(station, message);
        chunk.push_str(&format!("id: {}\ndata: {data}\n\n", message.offset));
    }
    Bytes::from(chunk)
}

/// One open stream.
struct Stream {
    /// Its id in the broker's connection registry.
    id: String,
    caller: Caller,
    station: String,
    expires_at: Instant,
}

impl Stream {
    /// Writes events until the client goes away or the stream must end.
    async fn run(
        self,
        state: &AppState,
        start: u64,
        mut source: Source,
        outbox: mpsc::Sender<Bytes>,
    ) {
        let joined = state.hub.join(&self.id, &self.caller.user).await;
        let mut notifications = joined.notifications;
        let mut sessions_ended = Some(joined.sessions_ended);
        let issued_at_ms = self.caller.session_issued_at_ms.unwrap_or(0);
        let every = state.config.sse_keepalive.max(Duration::from_secs(1));
        let mut keepalive = tokio::time::interval(every);
        keepalive.reset();
        let hello = format!(
            ": following {} from offset {start}\nretry: 2000\n\n",
            self.station
        );
        let mut sent = outbox.send(Bytes::from(hello)).await.is_ok();
        while sent {
            let chunk = tokio::select! {
                next = source.next(&self.station) => match next {
                    Ok(chunk) => Some(chunk),
                    Err(reason) => break_with(&outbox, &reason).await,
                },
                Some(data) = notifications.recv() => Some(notification(&data)),
                _ = keepalive.tick() => Some(Bytes::from_static(b":\n\n")),
                () = session_ends(&mut sessions_ended, issued_at_ms) => {
                    break_with(&outbox, "the session is over: the user's password or connection token changed, or its sessions were ended; authenticate again").await
                }
                () = tokio::time::sleep_until(self.expires_at.into()) => {
                    break_with(&outbox, "the access token expired: open the stream with a new one").await
                }
                () = state.closing.cancelled() => {
                    break_with(&outbox, "the proxy is shutting down: reconnect").await
                }
            };
            sent = match chunk {
                Some(chunk) => outbox.send(chunk).await.is_ok(),
                None => false,
            };
        }
        state.hub.leave(&self.id).await;
    }
}

fn notification(data: &[u8]) -> Bytes {
    let data = serde_json::from_slice::<Value>(data).unwrap_or(Value::Null);
    Bytes::from(format!("event: notification\ndata: {data}\n\n"))
}

/// Sends the `end` event saying why the stream ends; nothing more follows.
async fn break_with(outbox: &mpsc::Sender<Bytes>, reason: &str) -> Option<Bytes> {
    let end = format!("event: end\ndata: {}\n\n", json!({ "error": reason }));
    let _ = outbox.send(Bytes::from(end)).await;
    None
}
