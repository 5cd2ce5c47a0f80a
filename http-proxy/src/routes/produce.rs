//! `POST /stations/{station}/produce/single` and `.../produce/batch`.
//!
//! A single message is the body, as JSON (must parse), text (must be UTF-8)
//! or protobuf bytes. Request headers become message headers, except
//! hop-by-hop and credential headers; `msg-id` is the idempotency id.
//!
//! A batch is a JSON array whose elements are the messages (the seed's
//! form), or, with `?envelope=true`, objects
//! `{"payload", "headers"?, "msg_id"?, "content_type"?}`. The form is never
//! guessed. Valid messages are stored in order in one broker round trip;
//! each invalid one is reported with its index.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, value::RawValue};

use depot_schemas::wire::{
    ErrorCode, Header, NewMessage, ProduceOutcome, produce_outcome::Outcome,
};

use crate::{
    body::RequestBody,
    broker_link::Caller,
    coalesce::ProduceCoalescer,
    error::ProxyError,
    routes::{AppState, auth::parse_json, authenticated_caller},
};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";
const PROTOBUF: &str = "application/x-protobuf";

/// Request headers that are about the HTTP exchange or carry credentials,
/// never message headers.
const EXCLUDED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "host",
    "content-length",
    "content-type",
    // The body is stored decompressed.
    "content-encoding",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "accept-encoding",
    "msg-id",
];

/// Headers a client that cannot set them puts in the query string instead:
/// a browser's `navigator.sendBeacon` sends no `Authorization`, no `msg-id`
/// and only `text/plain`, and a page's `fetch` avoids the CORS preflight
/// (a round trip per event) only with such a "simple" request. So
/// `?content_type=` and `?msg_id=` stand for `Content-Type` and `msg-id`
/// and win over them (as `?authorization=` stands for the token).
#[derive(Debug, Default, Deserialize)]
struct HeadersInQuery {
    content_type: Option<String>,
    msg_id: Option<String>,
}

impl HeadersInQuery {
    /// The request's, or none when it has no query string (the usual case,
    /// which costs nothing); a query string that does not parse is 400.
    fn of(request: &HttpRequest) -> Result<Self, ProxyError> {
        let query = request.query_string();
        if query.is_empty() {
            return Ok(Self::default());
        }
        web::Query::<Self>::from_query(query)
            .map(web::Query::into_inner)
            .map_err(|e| ProxyError::bad_request(format!("bad query string: {e}")))
    }
}

/// The media type without parameters, lowercased (`text/plain; charset=utf-8`
/// is `text/plain`): `?content_type=`'s, else the `Content-Type` header's.
fn media_type(request: &HttpRequest, in_query: &HeadersInQuery) -> Option<String> {
    let value = match &in_query.content_type {
        Some(value) => value.as_str(),
        None => request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?,
    };
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

fn message_headers(request: &HttpRequest) -> Vec<Header> {
    request
        .headers()
        .iter()
        .filter(|(name, _)| !EXCLUDED_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some(Header {
                key: name.as_str().to_owned(),
                value: value.to_str().ok()?.to_owned(),
            })
        })
        .collect()
}

fn msg_id(request: &HttpRequest, in_query: HeadersInQuery) -> String {
    in_query.msg_id.unwrap_or_else(|| {
        request
            .headers()
            .get("msg-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    })
}

/// Checks a body against its content type.
pub fn check_payload(content_type: &str, payload: &[u8]) -> Result<(), String> {
    match content_type {
        JSON => serde_json::from_slice::<serde::de::IgnoredAny>(payload)
            .map(drop)
            .map_err(|e| format!("malformed JSON: {e}")),
        TEXT => std::str::from_utf8(payload)
            .map(drop)
            .map_err(|e| format!("text/plain bodies must be UTF-8: {e}")),
        _ => Ok(()),
    }
}

fn unsupported(content_type: Option<&str>, allowed: &str) -> ProxyError {
    ProxyError::UnsupportedMediaType(format!(
        "unsupported content type {}; use {allowed}",
        content_type.map_or("(none)".to_owned(), |t| format!("'{t}'")),
    ))
}

pub async fn single(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
    coalescer: web::Data<ProduceCoalescer>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let caller = authenticated_caller(&request, &state).await?;
    let in_query = HeadersInQuery::of(&request)?;
    let content_type = media_type(&request, &in_query);
    let content_type = match content_type.as_deref() {
        Some(t @ (JSON | TEXT | PROTOBUF)) => t.to_owned(),
        other => {
            return Err(unsupported(
                other,
                "application/json, text/plain or application/x-protobuf",
            ));
        }
    };
    let body = state
        .read_body(payload, state.config.max_single_body)
        .await?;
    check_payload(&content_type, &body).map_err(ProxyError::BadRequest)?;
    let message = NewMessage {
        msg_id: msg_id(&request, in_query),
        headers: message_headers(&request),
        content_type,
        payload: body,
    };
    let outcome = coalescer
        .produce(caller, station.into_inner(), message)
        .await?;
    let (offset, duplicate) = stored(outcome)?;
    Ok(produced(offset, duplicate))
}

/// Where one produced message went: its offset, and whether it was a
/// duplicate (the original's offset); a refusal as its HTTP error.
pub fn stored(outcome: ProduceOutcome) -> Result<(u64, bool), ProxyError> {
    match outcome.outcome {
        Some(Outcome::Offset(offset)) => Ok((offset, false)),
        Some(Outcome::DuplicateOf(offset)) => Ok((offset, true)),
        Some(Outcome::Error(error)) => Err(crate::broker_link::LinkError::Refused {
            code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified),
            message: error.message,
        }
        .into()),
        None => Err(ProxyError::Internal("the broker gave no outcome".into())),
    }
}

/// One broker round trip, measured.
pub async fn produce(
    state: &AppState,
    caller: Caller,
    station: String,
    messages: Vec<NewMessage>,
) -> Result<Vec<ProduceOutcome>, ProxyError> {
    let call = state.link.produce(caller, station, messages);
    Ok(state.metrics.produce_call(call).await?)
}

/// A single produce's answer: the seed's `{"error":null,"success":true}`
/// plus where the message is. A struct, not `json!`: this is every single
/// produce's answer, and building a `serde_json::Value` map for it cost
/// 2% of the proxy's CPU.
#[derive(Serialize)]
struct Produced {
    duplicate: bool,
    error: Option<()>,
    offset: u64,
    success: bool,
}

fn produced(offset: u64, duplicate: bool) -> HttpResponse {
    HttpResponse::Ok().json(Produced {
        duplicate,
        error: None,
        offset,
        success: true,
    })
}

#[derive(Debug, Deserialize)]
pub struct BatchQuery {
    #[serde(default)]
    envelope: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    msg_id: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
}

/// One element of an envelope batch as a message.
fn from_envelope(element: &RawValue, shared: &[Header]) -> Result<NewMessage, String> {
    let envelope: Envelope = serde_json::from_str(element.get()).map_err(|e| {
        format!(
            "not an envelope {{\"payload\", \"headers\"?, \"msg_id\"?, \"content_type\"?}}: {e}"
        )
    })?;
    let content_type = envelope.content_type.unwrap_or_else(|| JSON.to_owned());
    let payload = match content_type.as_str() {
        JSON => Bytes::copy_from_slice(envelope.payload.get().as_bytes()),
        TEXT => {
            let text: String = serde_json::from_str(envelope.payload.get())
                .map_err(|_| "a text/plain payload must be a JSON string".to_owned())?;
            Bytes::from(text)
        }
        PROTOBUF => {
            let encoded: String = serde_json::from_str(envelope.payload.get()).map_err(|_| {
                "an application/x-protobuf payload must be a base64 string".to_owned()
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("the payload is not valid base64: {e}"))?;
            Bytes::from(bytes)
        }
        other => return Err(format!("unsupported content type '{other}'")),
    };
    let mut headers = shared.to_vec();
    headers.extend(
        envelope
            .headers
            .into_iter()
            .map(|(key, value)| Header { key, value }),
    );
    Ok(NewMessage {
        msg_id: envelope.msg_id.unwrap_or_default(),
        headers,
        content_type,
        payload,
    })
}

pub async fn batch(
    request: HttpRequest,
    station: web::Path<String>,
    query: web::Query<BatchQuery>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let caller = authenticated_caller(&request, &state).await?;
    let content_type = media_type(&request, &HeadersInQuery::of(&request)?);
    if content_type.as_deref() != Some(JSON) {
        return Err(unsupported(
            content_type.as_deref(),
            "application/json (a JSON array)",
        ));
    }
    let body = state
        .read_body(payload, state.config.max_batch_body)
        .await?;
    let elements: Vec<&RawValue> = parse_json(&body)?;
    if elements.is_empty() {
        return Err(ProxyError::bad_request("the batch is empty"));
    }
    if elements.len() > state.config.max_batch_messages {
        return Err(ProxyError::bad_request(format!(
            "the batch has {} messages; the limit is {}",
            elements.len(),
            state.config.max_batch_messages
        )));
    }

    let shared_headers = message_headers(&request);
    let mut errors: Vec<(usize, String)> = Vec::new();
    let mut messages = Vec::with_capacity(elements.len());
    let mut indices = Vec::with_capacity(elements.len());
    for (index, element) in elements.iter().enumerate() {
        let message = if query.envelope {
            from_envelope(element, &shared_headers)
        } else {
            Ok(NewMessage {
                msg_id: String::new(),
                headers: shared_headers.clone(),
                content_type: JSON.to_owned(),
                payload: Bytes::copy_from_slice(element.get().as_bytes()),
            })
        };
        match message {
            Ok(message) => {
                messages.push(message);
                indices.push(index);
            }
            Err(error) => errors.push((index, error)),
        }
    }

    let mut sent = 0u64;
    if !messages.is_empty() {
        let outcomes = produce(&state, caller, station.into_inner(), messages).await?;
        for (index, outcome) in indices.into_iter().zip(outcomes) {
            match outcome.outcome {
                Some(Outcome::Offset(_)) | Some(Outcome::DuplicateOf(_)) => sent += 1,
                Some(Outcome::Error(error)) => errors.push((index, error.message)),
                None => errors.push((index, "no outcome".into())),
            }
        }
    }

    if errors.is_empty() {
        return Ok(HttpResponse::Ok().json(json!({ "error": null, "success": true, "sent": sent })));
    }
    errors.sort_by_key(|(index, _)| *index);
    let fail = errors.len();
    let errors: Vec<String> = errors
        .into_iter()
        .map(|(index, error)| format!("message {index}: {error}"))
        .collect();
    Ok(HttpResponse::BadRequest().json(json!({
        "errors": errors,
        "fail": fail,
        "sent": sent,
        "success": false,
    })))
}
