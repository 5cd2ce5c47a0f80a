//! The HTTP relay (seed 000), drop-in: `POST /relay` (and the seed's
//! `POST /receive`) take `{"method", "url", "body", "headers"?}`;
//! `GET /receive?url=&method=&body=&token=` does the same and answers in
//! HTML; `GET /getToken` trades a password in `Authorization` for a token.
//!
//! The request is tried at once (by the broker's relay delivery actor); the
//! answer says what happened, in the seed's words:
//!
//! | first attempt                       | status           | `Status`                |
//! |-------------------------------------|------------------|-------------------------|
//! | 2xx                                 | 200              | processed successfully  |
//! | 4xx but 408/429 (a dead letter, an alert) | the destination's | incorrect syntax  |
//! | unreachable, timeout, 408, 429, 5xx | 202 (retried)    | added to the queue      |
//!
//! `Response` is the destination's body (JSON when it parses). Depot adds
//! `delivery_id` (the records: `/v1/deliveries/{id}`) and, when the
//! destination did not answer, `error`.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, http::header, web};
use serde::Deserialize;
use serde_json::{Value, json};

use depot_broker::client::Secret;
use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    broker_link::Caller,
    error::ProxyError,
    routes::{AppState, auth::parse_json, unexpected},
    tokens::TokenType,
};

const DELIVERED: &str = "The request was processed successfully.";
const REJECTED: &str = "The request contains incorrect syntax or can't be processed.";
const QUEUED: &str = "The request don't arrived, therefore it was added to the queue.";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayBody {
    #[serde(default)]
    method: Option<String>,
    url: String,
    /// A JSON value is sent as JSON; a string as it is (text/plain unless
    /// `content_type` says otherwise).
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct RelayQuery {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

/// The caller's access token: `Bearer <jwt>`, the seed's bare
/// `Authorization: <jwt>`, or `?token=` / `?authorization=` in the query.
fn relay_token(request: &HttpRequest) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value);
        return Some(token.trim().to_owned());
    }
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(request.query_string())
            .ok()?;
    query
        .get("token")
        .or_else(|| query.get("authorization"))
        .cloned()
}

async fn relay_as_caller(
    request: &HttpRequest,
    state: &AppState,
    relay: wire::Relay,
) -> Result<wire::RelayResult, ProxyError> {
    let token = relay_token(request).ok_or_else(|| {
        ProxyError::Unauthorized(
            "an access token is required: Authorization: Bearer <jwt> (GET /getToken gives one)"
                .into(),
        )
    })?;
    let claims = state.tokens.verify(&token, TokenType::Access).await?;
    match state
        .link
        .call_as(Caller::of_token(&claims), Op::Relay(relay))
        .await?
    {
        Reply::RelayResult(result) => Ok(result),
        other => Err(unexpected(other)),
    }
}

/// The status and the seed's JSON answer for a relay's outcome.
fn answer(result: &wire::RelayResult) -> (StatusCode, Value) {
    let response = match std::str::from_utf8(&result.response_body) {
        _ if result.status == 0 => Value::Null,
        Ok(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        Err(_) => Value::String(String::from_utf8_lossy(&result.response_body).into_owned()),
    };
    let (status, words) = match result.outcome.as_str() {
        "delivered" => (StatusCode::OK, DELIVERED),
        "rejected" => (
            u16::try_from(result.status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(StatusCode::is_client_error)
                .unwrap_or(StatusCode::BAD_REQUEST),
            REJECTED,
        ),
        _ => (StatusCode::ACCEPTED, QUEUED),
    };
    let mut body = json!({
        "Status": words,
        "Response": response,
        "delivery_id": result.delivery_id,
    });
    if !result.error.is_empty() {
        body["error"] = result.error.clone().into();
    }
    (status, body)
}

/// `POST /relay`, `POST /receive`.
pub async fn relay(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let raw = state
        .read_body(payload, state.config.max_single_body)
        .await?;
    let body: RelayBody = parse_json(&raw)?;
    let (content_type, bytes) = match body.body {
        None | Some(Value::Null) => (String::new(), Vec::new()),
        Some(Value::String(text)) => ("text/plain; charset=utf-8".to_owned(), text.into_bytes()),
        Some(value) => (
            "application/json".to_owned(),
            value.to_string().into_bytes(),
        ),
    };
    let relay = wire::Relay {
        method: body.method.unwrap_or_else(|| "POST".to_owned()),
        url: body.url,
        headers: body
            .headers
            .into_iter()
            .map(|(key, value)| wire::Header { key, value })
            .collect(),
        content_type: body.content_type.unwrap_or(content_type),
        body: bytes.into(),
    };
    let result = relay_as_caller(&request, &state, relay).await?;
    let (status, body) = answer(&result);
    Ok(HttpResponse::build(status).json(body))
}

/// `GET /receive?url=&method=&body=&token=`: the same, answered in HTML.
pub async fn relay_from_query(
    request: HttpRequest,
    query: web::Query<RelayQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let query = query.into_inner();
    let body = query.body.unwrap_or_default();
    let relay = wire::Relay {
        method: query
            .method
            .unwrap_or_else(|| if body.is_empty() { "GET" } else { "POST" }.to_owned()),
        url: query.url,
        headers: Vec::new(),
        content_type: match serde_json::from_str::<Value>(&body) {
            _ if body.is_empty() => String::new(),
            Ok(_) => "application/json".to_owned(),
            Err(_) => "text/plain; charset=utf-8".to_owned(),
        },
        body: body.into_bytes().into(),
    };
    let (status, title, detail) = match relay_as_caller(&request, &state, relay).await {
        Ok(result) => {
            let (status, body) = answer(&result);
            let detail = match &body["Response"] {
                Value::String(text) => text.clone(),
                Value::Null => body["error"].as_str().unwrap_or_default().to_owned(),
                other => other.to_string(),
            };
            (
                status,
                body["Status"].as_str().unwrap_or_default().to_owned(),
                detail,
            )
        }
        Err(error) => {
            let status = actix_web::ResponseError::status_code(&error);
            (
                status,
                "The request was not relayed.".to_owned(),
                error.to_string(),
            )
        }
    };
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Depot relay</title></head>\
         <body><h1>{}</h1><pre>{}</pre></body></html>\n",
        escape(&title),
        escape(&detail)
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// HTML-escapes text for the page above.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /getToken`: `Authorization: <password>` (of the `--relay-user`) or
/// `Authorization: Basic <user:password>` gives `{"token": <access jwt>}`.
pub async fn get_token(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let missing = || {
        ProxyError::Unauthorized(
            "send the password in Authorization (or Basic user:password)".into(),
        )
    };
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (username, password) = match value.strip_prefix("Basic ") {
        Some(encoded) => {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(missing)?;
            let (user, password) = decoded.split_once(':').ok_or_else(missing)?;
            (user.to_owned(), password.to_owned())
        }
        None => (state.config.relay_user.clone(), value.to_owned()),
    };
    state
        .link
        .authenticate(username.clone(), Secret::Password(password))
        .await?;
    let config = &state.config;
    let pair = state
        .tokens
        .issue(&username, config.token_expiry, config.refresh_token_expiry)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "token": pair.jwt,
        "expires_in": pair.expires_in,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: &str, status: u32, body: &str) -> wire::RelayResult {
        wire::RelayResult {
            outcome: outcome.into(),
            delivery_id: "d-1".into(),
            status,
            response_body: body.as_bytes().to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn outcomes_map_to_the_seeds_answers() {
        let (status, body) = answer(&result("delivered", 201, "{\"id\":7}"));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["Status"], DELIVERED);
        assert_eq!(body["Response"]["id"], 7);
        let (status, body) = answer(&result("rejected", 422, "bad field"));
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["Response"], "bad field");
        let (status, body) = answer(&result("queued", 0, ""));
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["Status"], QUEUED);
        assert!(body["Response"].is_null());
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
