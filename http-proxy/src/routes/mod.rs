//! The HTTP routes. Handlers are thin: parse, authenticate, call the
//! [`BrokerLink`](crate::broker_link::BrokerLink) once, map the answer.
//!
//! - [`auth`]: `/auth/authenticate`, `/auth/refreshToken`.
//! - [`produce`]: `/stations/{name}/produce/single` and `.../batch`.
//! - [`health`]: `/monitoring/status`, `/health/liveness` and `/readiness`,
//!   `/metrics`.

pub mod auth;
pub mod health;
pub mod produce;

use actix_web::{HttpRequest, http::header, web};

use crate::{
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
