//! `POST /auth/authenticate`, `POST /auth/refreshToken` and
//! `POST /auth/logout`.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use depot_broker::client::Secret;
use depot_schemas::wire::{self, request::Op};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, authenticated_caller, bearer_token, done},
};

/// Bodies of the auth routes are small; anything larger is refused.
const MAX_AUTH_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    #[serde(default)]
    connection_token: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    token_expiry_in_minutes: Option<u64>,
    #[serde(default)]
    refresh_token_expiry_in_minutes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(default)]
    jwt_refresh_token: Option<String>,
}

/// Parses a JSON body, naming line and column when it is malformed.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ProxyError> {
    serde_json::from_slice(body)
        .map_err(|e| ProxyError::bad_request(format!("malformed JSON: {e}")))
}

/// A requested lifetime in minutes, or the default; never above the maximum.
fn lifetime(
    minutes: Option<u64>,
    default: Duration,
    maximum: Duration,
) -> Result<Duration, ProxyError> {
    match minutes {
        None => Ok(default.min(maximum)),
        Some(0) => Err(ProxyError::bad_request(
            "token lifetimes must be at least 1 minute",
        )),
        Some(minutes) => Ok(Duration::from_secs(minutes.saturating_mul(60)).min(maximum)),
    }
}

pub async fn authenticate(
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_AUTH_BODY).await?;
    let credentials: Credentials = parse_json(&body)?;
    let secret = match (credentials.connection_token, credentials.password) {
        (Some(token), None) => Secret::ConnectionToken(token),
        (None, Some(password)) => Secret::Password(password),
        _ => {
            return Err(ProxyError::bad_request(
                "give either \"connection_token\" or \"password\"",
            ));
        }
    };
    let config = &state.config;
    let access = lifetime(
        credentials.token_expiry_in_minutes,
        config.token_expiry,
        config.max_token_expiry,
    )?;
    let refresh = lifetime(
        credentials.refresh_token_expiry_in_minutes,
        config.refresh_token_expiry,
        config.max_refresh_token_expiry,
    )?;
    state
        .link
        .authenticate(credentials.username.clone(), secret)
        .await?;
    let pair = state
        .tokens
        .issue(&credentials.username, access, refresh)
        .await?;
    Ok(HttpResponse::Ok().json(pair))
}

pub async fn refresh(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_AUTH_BODY).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshBody::default()
    } else {
        parse_json::<RefreshBody>(&body)?
    };
    let token = from_body
        .jwt_refresh_token
        .or_else(|| bearer_token(&request))
        .ok_or_else(|| {
            ProxyError::Unauthorized(
                "a refresh token is required: Authorization: Bearer <refresh token> or {\"jwt_refresh_token\": ...}"
                    .into(),
            )
        })?;
    let claims = state.tokens.redeem_refresh(&token).await?;
    let config = &state.config;
    let pair = state
        .tokens
        .issue(
            &claims.sub,
            config.token_expiry,
            config.refresh_token_expiry,
        )
        .await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// `POST /auth/logout` with an access token: ends every session of the
/// token's user begun until now, on every proxy (its access and refresh
/// tokens are refused from then on, its WebSockets closed): a log out
/// everywhere. Its password and connection token stay, so it can
/// authenticate again.
pub async fn logout(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let caller = authenticated_caller(&request, &state).await?;
    let op = Op::EndSessions(wire::EndSessions {
        user: caller.user.clone(),
    });
    state.link.call_as(caller, op).await?;
    Ok(done())
}
