//! WebSockets on the proxy (`GET /ws`), for browsers and devices: the
//! WebSocket API of seed 001 (actions routed by their `action` key, with a
//! default answer), built on the broker's stations.
//!
//! - [`protocol`]: the frames, both ways.
//! - [`connection`]: one connection's loops, limits and subscriptions.
//! - [`fanout`]: one feed per station for the subscriptions from the
//!   latest message, each frame serialised once.
//! - [`hub`]: this proxy's connections in the broker's registry, and the
//!   notifications pushed to them.
//!
//! Authentication: `?authorization=<jwt>` at connect (browsers cannot set
//! headers; a bad token is refused with 401 before the upgrade), or, unless
//! `--ws-authorize-timeout 0`, a first `{"action":"authorize","token":...}`
//! frame within that timeout; until then nothing else is served.

pub mod connection;
pub mod fanout;
pub mod hub;
pub mod protocol;

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::{
    error::ProxyError,
    routes::{AppState, bearer_token},
    tokens::TokenType,
};

/// The limits of each connection (from the proxy's flags).
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    /// Largest frame (or message of continuation frames) accepted.
    pub max_frame: usize,
    /// Frames waiting to be sent to a client, at most.
    pub send_buffer: usize,
    /// A client whose full buffer takes no frame for this long is too
    /// slow, and closed.
    pub slow_timeout: Duration,
    pub ping_interval: Duration,
    /// Without any frame (a pong counts) for this long, a client is closed.
    pub idle_timeout: Duration,
    /// How long a connection opened without a token may take to authorize.
    pub authorize_timeout: Duration,
    pub max_subscriptions: usize,
}

/// `GET /ws`: authenticates, upgrades, and serves the connection.
pub async fn connect(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let config = &state.config;
    let limits = WsLimits {
        max_frame: config.ws_max_frame as usize,
        send_buffer: config.ws_send_buffer.max(1),
        slow_timeout: config.ws_slow_timeout,
        ping_interval: config.ws_ping_interval,
        idle_timeout: config.ws_idle_timeout,
        authorize_timeout: config.ws_authorize_timeout,
        max_subscriptions: config.ws_max_subscriptions,
    };
    let token = match bearer_token(&request) {
        Some(token) => Some(state.tokens.verify(&token, TokenType::Access).await?),
        None if limits.authorize_timeout.is_zero() => {
            return Err(ProxyError::Unauthorized(
                "an access token is required: /ws?authorization=<jwt>".into(),
            ));
        }
        None => None,
    };
    let place = state
        .ws_connections
        .take(config.ws_max_connections)
        .ok_or_else(|| {
            ProxyError::Unavailable(format!(
                "this proxy holds its maximum of {} WebSocket connections",
                config.ws_max_connections
            ))
        })?;
    let (response, session, stream) = actix_ws::handle(&request, body)
        .map_err(|error| ProxyError::bad_request(format!("not a WebSocket upgrade: {error}")))?;
    let stream = stream
        .max_frame_size(limits.max_frame)
        .aggregate_continuations()
        .max_continuation_size(limits.max_frame);
    let connection = connection::Connection::new(state.clone(), limits, token.as_ref());
    state.metrics.ws_connections.inc();
    actix_web::rt::spawn(async move {
        connection.run(session, stream).await;
        state.metrics.ws_connections.dec();
        drop(place);
    });
    Ok(response)
}
