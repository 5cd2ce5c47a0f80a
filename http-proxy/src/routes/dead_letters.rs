//! Dead letters over HTTP (administrators only):
//!
//! | method & path                                   | does                 |
//! |-------------------------------------------------|----------------------|
//! | `GET /stations/{station}/dead-letters`          | list (`?after=&limit=`), no payloads |
//! | `GET /stations/{station}/dead-letters/{id}`     | one, with its payload |
//! | `POST /stations/{station}/dead-letters/resend`  | `{"ids": [..]}` or `{"all": true}` |
//! | `DELETE /stations/{station}/dead-letters/{id}`  | delete one for good (404 if it is not there) |
//! | `DELETE /stations/{station}/dead-letters`       | delete every one the station holds now |

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use depot_schemas::wire::{self, request::Op, resend_outcome::Outcome, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, auth::parse_json, call_as_user as call, succeeded, unexpected},
};

const MAX_RESEND_BODY: u64 = 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    limit: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resend {
    #[serde(default)]
    ids: Vec<u64>,
    #[serde(default)]
    all: bool,
}

fn letter_json(letter: &wire::DeadLetter, with_payload: bool) -> Value {
    let mut value = json!({
        "id": letter.id,
        "station": letter.station,
        "timestamp_ms": letter.timestamp_ms,
        "reason": letter.reason,
        "schema": letter.schema,
        "schema_version": letter.schema_version,
        "producer": letter.producer,
        "msg_id": letter.msg_id,
        "headers": letter.headers.iter().map(|h| (h.key.clone(), Value::String(h.value.clone()))).collect::<serde_json::Map<_, _>>(),
        "content_type": letter.content_type,
        "payload_bytes": letter.payload_bytes,
    });
    depot_broker::views::add_poison_fields(letter, &mut value);
    if with_payload {
        let text = (letter.content_type.starts_with("application/json")
            || letter.content_type.starts_with("text/"))
        .then(|| std::str::from_utf8(&letter.payload).ok())
        .flatten();
        match text {
            Some(text) => value["payload"] = Value::String(text.to_owned()),
            None => {
                value["payload_base64"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&letter.payload))
            }
        }
    }
    value
}

pub async fn list(
    request: HttpRequest,
    station: web::Path<String>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::ListDeadLetters(wire::ListDeadLetters {
        station: station.into_inner(),
        after_id: query.after,
        limit: query.limit,
    });
    match call(&request, &state, op).await? {
        Reply::DeadLetterList(list) => Ok(succeeded(json!({
            "dead_letters": list.dead_letters.iter().map(|l| letter_json(l, false)).collect::<Vec<_>>(),
            "more": list.more,
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn show(
    request: HttpRequest,
    path: web::Path<(String, u64)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let (station, id) = path.into_inner();
    let op = Op::GetDeadLetter(wire::GetDeadLetter { station, id });
    match call(&request, &state, op).await? {
        Reply::DeadLetter(letter) => Ok(succeeded(json!({
            "dead_letter": letter_json(&letter, true),
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn resend(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_RESEND_BODY).await?;
    let resend: Resend = parse_json(&body)?;
    if resend.all != resend.ids.is_empty() {
        return Err(ProxyError::bad_request(
            "give either \"ids\" or \"all\": true",
        ));
    }
    let station = station.into_inner();
    let mut outcomes = Vec::new();
    let mut after = 0;
    loop {
        let op = Op::ResendDeadLetters(wire::ResendDeadLetters {
            station: station.clone(),
            ids: resend.ids.clone(),
            all: resend.all,
            after_id: after,
            limit: 0,
        });
        let result = match call(&request, &state, op).await? {
            Reply::ResendResult(result) => result,
            other => return Err(unexpected(other)),
        };
        after = result.outcomes.last().map_or(after, |o| o.id);
        outcomes.extend(result.outcomes);
        if !result.more {
            break;
        }
    }
    let resent = outcomes
        .iter()
        .filter(|o| matches!(o.outcome, Some(Outcome::Offset(_))))
        .count();
    let outcomes: Vec<Value> = outcomes
        .iter()
        .map(|o| match &o.outcome {
            Some(Outcome::Offset(offset)) => json!({"id": o.id, "offset": offset}),
            Some(Outcome::Error(e)) => json!({"id": o.id, "error": e.message}),
            None => json!({"id": o.id}),
        })
        .collect();
    let fail = outcomes.len() - resent;
    Ok(HttpResponse::Ok().json(json!({
        "success": fail == 0,
        "error": null,
        "resent": resent,
        "fail": fail,
        "outcomes": outcomes,
    })))
}

pub async fn delete(
    request: HttpRequest,
    path: web::Path<(String, u64)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let (station, id) = path.into_inner();
    let op = Op::DeleteDeadLetters(wire::DeleteDeadLetters {
        station: station.clone(),
        ids: vec![id],
        ..Default::default()
    });
    match call(&request, &state, op).await? {
        Reply::DeadLettersDeleted(deleted) if deleted.deleted == 1 => {
            Ok(succeeded(json!({ "deleted": 1 })))
        }
        Reply::DeadLettersDeleted(_) => Err(ProxyError::NotFound(format!(
            "station {station} has no dead letter {id}"
        ))),
        other => Err(unexpected(other)),
    }
}

/// Deletes every dead letter the station holds when the request arrives,
/// in bounded broker calls (letters refused meanwhile stay).
pub async fn delete_all(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let station = station.into_inner();
    let mut deleted = 0;
    let mut up_to_id = 0;
    loop {
        let op = Op::DeleteDeadLetters(wire::DeleteDeadLetters {
            station: station.clone(),
            all: true,
            up_to_id,
            ..Default::default()
        });
        let result = match call(&request, &state, op).await? {
            Reply::DeadLettersDeleted(result) => result,
            other => return Err(unexpected(other)),
        };
        deleted += result.deleted;
        up_to_id = result.up_to_id;
        if !result.more {
            return Ok(succeeded(json!({ "deleted": deleted })));
        }
    }
}
