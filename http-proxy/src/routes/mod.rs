//! The HTTP routes. Handlers are thin: parse, authenticate, call the
//! [`BrokerLink`](crate::broker_link::BrokerLink) once, map the answer.
//!
//! - [`auth`]: `/auth/authenticate`, `/auth/refreshToken`.
//! - [`produce`]: `/stations/{name}/produce/single` and `.../batch`.
//! - [`schemas`]: schema administration and attachments (admins).
//! - [`dead_letters`]: listing and resending refused messages (admins).
//! - [`subscriptions`]: webhook subscriptions (admins).
//! - [`deliveries`]: their deliveries and attempts (admins).
//! - [`notify`]: pushing data to WebSocket connections, on any proxy.
//! - [`relay`]: `/relay`, and the seed's `/receive` and `/getToken`.
//! - [`health`]: `/monitoring/status`, `/health/liveness` and `/readiness`,
//!   `/metrics`, and the `/console` page.

pub mod auth;
pub mod dead_letters;
pub mod deliveries;
pub mod health;
pub mod notify;
pub mod produce;
pub mod relay;
pub mod schemas;
pub mod subscriptions;

use actix_web::{HttpRequest, http::header, web};

use crate::{
    body::read_limited,
    broker_link::SharedLink,
    config::ProxyConfig,
    error::ProxyError,
    metrics::Metrics,
    tokens::{TokenType, Tokens},
};

/// What every handler shares.
pub struct AppState {
    pub link: SharedLink,
    pub tokens: Tokens,
    pub config: ProxyConfig,
    pub metrics: Metrics,
    /// Open WebSocket connections.
    pub ws_connections: crate::ws::WsCounter,
    /// This proxy's connections in the broker's registry.
    pub hub: std::sync::Arc<crate::ws::hub::Hub>,
    /// Shared station feeds for WebSocket subscriptions.
    pub fanout: crate::ws::fanout::Fanout,
}

impl AppState {
    /// A request's body, at most `limit` bytes (413 beyond), within the
    /// configured stall timeout (408).
    pub async fn read_body(
        &self,
        payload: web::Payload,
        limit: u64,
    ) -> Result<bytes::Bytes, ProxyError> {
        read_limited(payload, limit, self.config.http_body_timeout).await
    }
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/auth/authenticate", web::post().to(auth::authenticate))
        .route("/auth/refreshToken", web::post().to(auth::refresh))
        .route(
            "/stations/{station}/produce/single",
            web::post().to(produce::single),
        )
        .route(
            "/stations/{station}/produce/batch",
            web::post().to(produce::batch),
        )
        .route("/schemas", web::get().to(schemas::list))
        .route("/schemas", web::post().to(schemas::create))
        .route("/schemas/{name}", web::get().to(schemas::describe))
        .route("/schemas/{name}", web::delete().to(schemas::delete))
        .route(
            "/schemas/{name}/versions",
            web::post().to(schemas::add_version),
        )
        .route(
            "/schemas/{name}/rollback",
            web::post().to(schemas::rollback),
        )
        .route("/stations/{station}/schema", web::put().to(schemas::attach))
        .route(
            "/stations/{station}/schema",
            web::delete().to(schemas::detach),
        )
        .route(
            "/stations/{station}/dead-letters",
            web::get().to(dead_letters::list),
        )
        .route(
            "/stations/{station}/dead-letters/resend",
            web::post().to(dead_letters::resend),
        )
        .route(
            "/stations/{station}/dead-letters/{id}",
            web::get().to(dead_letters::show),
        )
        .route("/v1/subscriptions", web::get().to(subscriptions::list))
        .route("/v1/subscriptions", web::post().to(subscriptions::create))
        .route(
            "/v1/subscriptions/{id}",
            web::get().to(subscriptions::describe),
        )
        .route(
            "/v1/subscriptions/{id}",
            web::delete().to(subscriptions::delete),
        )
        .route(
            "/v1/subscriptions/{id}",
            web::patch().to(subscriptions::update),
        )
        .route(
            "/v1/subscriptions/{id}/pause",
            web::post().to(subscriptions::pause),
        )
        .route(
            "/v1/subscriptions/{id}/resume",
            web::post().to(subscriptions::resume),
        )
        .route(
            "/v1/subscriptions/{id}/deliveries",
            web::get().to(deliveries::list_of_subscription),
        )
        .route(
            "/v1/subscriptions/{id}/resend",
            web::post().to(deliveries::resend),
        )
        .route("/v1/deliveries", web::get().to(deliveries::list))
        .route("/v1/deliveries/{id}", web::get().to(deliveries::show))
        .route("/v1/delivery-attempts", web::get().to(deliveries::attempts))
        .route(
            "/v1/delivery-attempts/{id}",
            web::get().to(deliveries::show_attempt),
        )
        .route("/ws", web::get().to(crate::ws::connect))
        .route("/console", web::get().to(health::console))
        .route("/users/{user}/notify", web::post().to(notify::user))
        .route(
            "/connections/{id}/notify",
            web::post().to(notify::connection),
        )
        .route("/relay", web::post().to(relay::relay))
        .route("/receive", web::post().to(relay::relay))
        .route("/receive", web::get().to(relay::relay_from_query))
        .route("/getToken", web::get().to(relay::get_token))
        .route("/monitoring/status", web::get().to(health::status))
        .route("/health/liveness", web::get().to(health::liveness))
        .route("/health/readiness", web::get().to(health::readiness))
        .route("/metrics", web::get().to(health::metrics));
}

/// A bearer token from `Authorization: Bearer <jwt>`, or from the
/// `authorization` query parameter (browsers cannot always set headers).
pub fn bearer_token(request: &HttpRequest) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(token.trim().to_owned());
    }
    web::Query::<std::collections::HashMap<String, String>>::from_query(request.query_string())
        .ok()?
        .get("authorization")
        .map(|t| t.trim_start_matches("Bearer ").to_owned())
}

/// The user of a request's access token, or 401.
pub async fn authenticated_user(
    request: &HttpRequest,
    state: &AppState,
) -> Result<String, ProxyError> {
    let token = bearer_token(request).ok_or_else(|| {
        ProxyError::Unauthorized(
            "an access token is required: Authorization: Bearer <jwt> or ?authorization=<jwt>"
                .into(),
        )
    })?;
    Ok(state.tokens.verify(&token, TokenType::Access).await?.sub)
}

/// Authenticates a request and runs one broker operation as its token's
/// user, whose permissions the broker checks (the admin routes: schemas,
/// dead letters, subscriptions).
pub async fn admin_call(
    request: &HttpRequest,
    state: &AppState,
    op: depot_schemas::wire::request::Op,
) -> Result<depot_schemas::wire::response::Result, ProxyError> {
    let user = authenticated_user(request, state).await?;
    Ok(state.link.call_as(user, op).await?)
}

/// An answer of the wrong kind: a broker bug, reported as 500.
pub fn unexpected(reply: depot_schemas::wire::response::Result) -> ProxyError {
    ProxyError::Internal(format!("unexpected answer from the broker: {reply:?}"))
}
