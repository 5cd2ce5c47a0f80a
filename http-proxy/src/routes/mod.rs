//! The HTTP routes. Handlers are thin: parse, authenticate, call the
//! [`BrokerLink`](crate::broker_link::BrokerLink) once, map the answer.
//!
//! - [`auth`]: `/auth/authenticate`, `/auth/refreshToken`.
//! - [`produce`]: `/stations/{name}/produce/single` and `.../batch`.
//! - [`stations`]: station administration and fetching messages.
//! - [`consumers`]: consumer positions, where named readers left off.
//! - [`topics`]: the seed webhook service's `/v1/topics` and `/v1/messages`.
//! - [`users`]: user administration (admins).
//! - [`schemas`]: schema administration and attachments (admins).
//! - [`dead_letters`]: listing and resending refused messages (admins).
//! - [`subscriptions`]: webhook subscriptions (admins).
//! - [`deliveries`]: their deliveries and attempts (admins).
//! - [`notify`]: pushing data to WebSocket connections, on any proxy.
//! - [`relay`]: `/relay`, and the seed's `/receive` and `/getToken`.
//! - [`health`]: `/monitoring/status`, `/health/liveness` and `/readiness`,
//!   `/metrics`, and the `/console` page.

pub mod auth;
pub mod consumers;
pub mod dead_letters;
pub mod deliveries;
pub mod events;
pub mod health;
pub mod notify;
pub mod produce;
pub mod relay;
pub mod schemas;
pub mod stations;
pub mod subscriptions;
pub mod topics;
pub mod users;

use actix_web::{
    HttpRequest, HttpResponse, Resource, ResponseError, Route,
    http::{Method, header},
    web,
};

use crate::{
    body::{RequestBody, read_body},
    broker_link::{Caller, SharedLink},
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
    pub ws_connections: crate::places::Places,
    /// Fetches waiting for messages now (long polls).
    pub waiting_fetches: crate::places::Places,
    /// Open Server-Sent Event streams.
    pub sse_streams: crate::places::Places,
    /// This proxy's connections in the broker's registry.
    pub hub: std::sync::Arc<crate::ws::hub::Hub>,
    /// Shared station feeds for WebSocket subscriptions.
    pub fanout: crate::ws::fanout::Fanout,
    /// Cancelled when the proxy starts shutting down.
    pub closing: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// A request's body, at most `limit` bytes (413 beyond), within the
    /// configured stall timeout (408).
    pub async fn read_body(
        &self,
        body: RequestBody,
        limit: u64,
    ) -> Result<bytes::Bytes, ProxyError> {
        read_body(body, limit, self.config.http_body_timeout).await
    }
}

pub fn configure(config: &mut web::ServiceConfig) {
    use Method as M;
    // The produce routes first: the router tries paths in this order.
    let resources = [
        at(
            "/stations/{station}/produce/single",
            [(M::POST, web::to(produce::single))],
        ),
        at(
            "/stations/{station}/produce/batch",
            [(M::POST, web::to(produce::batch))],
        ),
        at(
            "/auth/authenticate",
            [(M::POST, web::to(auth::authenticate))],
        ),
        at("/auth/refreshToken", [(M::POST, web::to(auth::refresh))]),
        at("/auth/logout", [(M::POST, web::to(auth::logout))]),
        at(
            "/stations",
            [
                (M::GET, web::to(stations::list)),
                (M::POST, web::to(stations::create)),
            ],
        ),
        at(
            "/stations/{station}",
            [
                (M::GET, web::to(stations::describe)),
                (M::PATCH, web::to(stations::update)),
                (M::DELETE, web::to(stations::delete)),
            ],
        ),
        at(
            "/stations/{station}/messages",
            [
                (M::GET, web::to(stations::fetch)),
                (M::DELETE, web::to(stations::purge)),
            ],
        ),
        at(
            "/stations/{station}/events",
            [(M::GET, web::to(events::follow))],
        ),
        at(
            "/stations/{station}/consumers",
            [(M::GET, web::to(consumers::list))],
        ),
        at(
            "/stations/{station}/consumers/{consumer}",
            [
                (M::GET, web::to(consumers::show)),
                (M::PUT, web::to(consumers::commit)),
                (M::DELETE, web::to(consumers::delete)),
            ],
        ),
        at(
            "/stations/{station}/consumers/{consumer}/ack",
            [(M::POST, web::to(consumers::acknowledge))],
        ),
        at(
            "/stations/{station}/consumers/{consumer}/leases",
            [(M::POST, web::to(consumers::change_leases))],
        ),
        at(
            "/schemas",
            [
                (M::GET, web::to(schemas::list)),
                (M::POST, web::to(schemas::create)),
            ],
        ),
        at(
            "/schemas/{name}",
            [
                (M::GET, web::to(schemas::describe)),
                (M::DELETE, web::to(schemas::delete)),
            ],
        ),
        at(
            "/schemas/{name}/versions",
            [(M::POST, web::to(schemas::add_version))],
        ),
        at(
            "/schemas/{name}/rollback",
            [(M::POST, web::to(schemas::rollback))],
        ),
        at(
            "/stations/{station}/schema",
            [
                (M::PUT, web::to(schemas::attach)),
                (M::DELETE, web::to(schemas::detach)),
            ],
        ),
        at(
            "/stations/{station}/dead-letters",
            [
                (M::GET, web::to(dead_letters::list)),
                (M::DELETE, web::to(dead_letters::delete_all)),
            ],
        ),
        at(
            "/stations/{station}/dead-letters/resend",
            [(M::POST, web::to(dead_letters::resend))],
        ),
        at(
            "/stations/{station}/dead-letters/{id}",
            [
                (M::GET, web::to(dead_letters::show)),
                (M::DELETE, web::to(dead_letters::delete)),
            ],
        ),
        at(
            "/v1/topics",
            [
                (M::GET, web::to(topics::list)),
                (M::POST, web::to(topics::create)),
            ],
        ),
        at(
            "/v1/topics/{id}",
            [
                (M::GET, web::to(topics::describe)),
                (M::PATCH, web::to(topics::update)),
                (M::DELETE, web::to(stations::delete)),
            ],
        ),
        at("/v1/messages", [(M::POST, web::to(topics::publish))]),
        at(
            "/v1/subscriptions",
            [
                (M::GET, web::to(subscriptions::list)),
                (M::POST, web::to(subscriptions::create)),
            ],
        ),
        at(
            "/v1/subscriptions/{id}",
            [
                (M::GET, web::to(subscriptions::describe)),
                (M::DELETE, web::to(subscriptions::delete)),
                (M::PATCH, web::to(subscriptions::update)),
            ],
        ),
        at(
            "/v1/subscriptions/{id}/pause",
            [(M::POST, web::to(subscriptions::pause))],
        ),
        at(
            "/v1/subscriptions/{id}/resume",
            [(M::POST, web::to(subscriptions::resume))],
        ),
        at(
            "/v1/subscriptions/{id}/deliveries",
            [(M::GET, web::to(deliveries::list_of_subscription))],
        ),
        at(
            "/v1/subscriptions/{id}/resend",
            [(M::POST, web::to(deliveries::resend))],
        ),
        at("/v1/deliveries", [(M::GET, web::to(deliveries::list))]),
        at("/v1/deliveries/{id}", [(M::GET, web::to(deliveries::show))]),
        at(
            "/v1/delivery-attempts",
            [(M::GET, web::to(deliveries::attempts))],
        ),
        at(
            "/v1/delivery-attempts/{id}",
            [(M::GET, web::to(deliveries::show_attempt))],
        ),
        at("/ws", [(M::GET, web::to(crate::ws::connect))]),
        at("/console", [(M::GET, web::to(health::console))]),
        at(
            "/users",
            [
                (M::GET, web::to(users::list)),
                (M::POST, web::to(users::create)),
            ],
        ),
        at(
            "/users/{name}",
            [
                (M::PATCH, web::to(users::update)),
                (M::DELETE, web::to(users::delete)),
            ],
        ),
        at(
            "/users/{name}/end-sessions",
            [(M::POST, web::to(users::end_sessions))],
        ),
        at("/users/{user}/notify", [(M::POST, web::to(notify::user))]),
        at(
            "/connections/{id}/notify",
            [(M::POST, web::to(notify::connection))],
        ),
        at("/relay", [(M::POST, web::to(relay::relay))]),
        at(
            "/receive",
            [
                (M::POST, web::to(relay::relay)),
                (M::GET, web::to(relay::relay_from_query)),
            ],
        ),
        at("/getToken", [(M::GET, web::to(relay::get_token))]),
        at("/monitoring/status", [(M::GET, web::to(health::status))]),
        at("/health/liveness", [(M::GET, web::to(health::liveness))]),
        at("/health/readiness", [(M::GET, web::to(health::readiness))]),
        at("/metrics", [(M::GET, web::to(health::metrics))]),
    ];
    for resource in resources {
        config.service(resource);
    }
    config
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            ProxyError::bad_request(format!("bad query string: {error}")).into()
        }))
        .default_service(web::to(no_route));
}

/// One path and the handler of each method it serves; any other method is
/// answered 405 with `Allow`.
fn at<const N: usize>(path: &str, routes: [(Method, Route); N]) -> Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(path);
    for (method, route) in routes {
        resource = resource.route(route.method(method));
    }
    resource.default_service(web::to(move |request: HttpRequest| {
        let allow = allow.clone();
        async move {
            let error = ProxyError::MethodNotAllowed(format!(
                "{} is not served on {}: use {allow}",
                request.method(),
                request.path()
            ));
            let mut response = error.error_response();
            if let Ok(value) = header::HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    }))
}

/// Any path no route serves.
async fn no_route(request: HttpRequest) -> HttpResponse {
    ProxyError::NotFound(format!(
        "no route {} {}: see README for the API",
        request.method(),
        request.path()
    ))
    .error_response()
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

/// The user of a request's access token, in the token's session, or 401.
pub async fn authenticated_caller(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Caller, ProxyError> {
    let token = bearer_token(request).ok_or_else(|| {
        ProxyError::Unauthorized(
            "an access token is required: Authorization: Bearer <jwt> or ?authorization=<jwt>"
                .into(),
        )
    })?;
    let claims = state.tokens.verify(&token, TokenType::Access).await?;
    Ok(Caller::of_token(&claims).from_address(request.peer_addr()))
}

/// Authenticates a request and runs one broker operation as its token's
/// user, whose permissions the broker checks (every route but produce,
/// which goes through the coalescer).
pub async fn call_as_user(
    request: &HttpRequest,
    state: &AppState,
    op: depot_schemas::wire::request::Op,
) -> Result<depot_schemas::wire::response::Result, ProxyError> {
    let caller = authenticated_caller(request, state).await?;
    Ok(state.link.call_as(caller, op).await?)
}

/// `{"success": true, "error": null}`: done, nothing more to say.
pub fn done() -> HttpResponse {
    succeeded(serde_json::json!({}))
}

/// 200 with `fields` (a JSON object) and `"success": true, "error": null`.
pub fn succeeded(mut fields: serde_json::Value) -> HttpResponse {
    if let Some(object) = fields.as_object_mut() {
        object.insert("success".into(), true.into());
        object.insert("error".into(), serde_json::Value::Null);
    }
    HttpResponse::Ok().json(fields)
}

/// An answer of the wrong kind: a broker bug, reported as 500.
pub fn unexpected(reply: depot_schemas::wire::response::Result) -> ProxyError {
    ProxyError::Internal(format!("unexpected answer from the broker: {reply:?}"))
}
