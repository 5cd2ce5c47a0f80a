//! The webhook seed's topics and messages (`/v1/topics`, `/v1/messages`),
//! so its quickstart works against Depot as written. A topic is a station:
//! the topic's `id` is the station's name, its `name` the station's
//! description; a message is produced to the station like any other, and
//! the station's webhook subscriptions (`/v1/subscriptions`) deliver it.
//!
//! | method & path             | does                                          |
//! |---------------------------|-----------------------------------------------|
//! | `POST /v1/topics`         | `{"topic": {"id", "name"?}}` create           |
//! | `GET /v1/topics`          | `?limit=&offset=` list, by id                 |
//! | `GET /v1/topics/{id}`     | one topic                                     |
//! | `PATCH /v1/topics/{id}`   | `{"topic": {"name"}}` rename                  |
//! | `DELETE /v1/topics/{id}`  | delete it and its messages                    |
//! | `POST /v1/messages`       | `{"message": {"topic_id", "content_type", "data"}}` |
//!
//! Answers are the seed's objects, not wrapped; errors are Depot's
//! `{"success": false, "error"}`. Permissions are the station routes',
//! and deleting a topic is deleting its station
//! ([`super::stations::delete`]).

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use depot_broker::{delivery::relay::RESERVED_PREFIX, views::time};
use depot_schemas::wire::{self, NewMessage, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{
        AppState,
        auth::parse_json,
        authenticated_caller, call_as_user as call,
        produce::{check_payload, produce, stored},
        unexpected,
    },
};

const MAX_TOPIC_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedTopic {
    topic: Topic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Topic {
    /// Absent in a rename (the path names the topic).
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedMessage {
    message: Message,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    topic_id: String,
    content_type: String,
    /// The payload as text (the seed sends JSON as a string).
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
    #[serde(default, rename = "authorization")]
    _authorization: Option<String>,
}

fn topic_json(info: &wire::StationInfo) -> Value {
    json!({
        "id": info.name,
        "name": info.description,
        "created_at": time(info.created_at_ms),
        "updated_at": time(info.updated_at_ms),
    })
}

fn topic_reply(reply: Reply, status: StatusCode) -> Result<HttpResponse, ProxyError> {
    match reply {
        Reply::Station(info) => Ok(HttpResponse::build(status).json(topic_json(&info))),
        other => Err(unexpected(other)),
    }
}

pub async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_TOPIC_BODY).await?;
    let topic = parse_json::<WrappedTopic>(&body)?.topic;
    let id = topic
        .id
        .ok_or_else(|| ProxyError::bad_request("a topic needs an \"id\": its station's name"))?;
    let op = Op::CreateStation(wire::CreateStation {
        name: id,
        settings: Some(wire::StationSettings::default()),
        description: topic.name.unwrap_or_default(),
    });
    topic_reply(call(&request, &state, op).await?, StatusCode::CREATED)
}

pub async fn list(
    request: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    match call(&request, &state, Op::ListStations(wire::ListStations {})).await? {
        Reply::StationList(list) => {
            let topics: Vec<Value> = list
                .stations
                .iter()
                // Depot's own stations (the relay's, the audit trail) are
                // not topics anyone made.
                .filter(|station| !station.name.starts_with(RESERVED_PREFIX))
                .skip(query.offset)
                .take(query.limit.unwrap_or(usize::MAX))
                .map(topic_json)
                .collect();
            Ok(HttpResponse::Ok().json(json!({ "topics": topics })))
        }
        other => Err(unexpected(other)),
    }
}

pub async fn describe(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DescribeStation(wire::DescribeStation {
        name: id.into_inner(),
    });
    topic_reply(call(&request, &state, op).await?, StatusCode::OK)
}

pub async fn update(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_TOPIC_BODY).await?;
    let topic = parse_json::<WrappedTopic>(&body)?.topic;
    let id = id.into_inner();
    if topic.id.as_ref().is_some_and(|given| *given != id) {
        return Err(ProxyError::bad_request(
            "a topic's id is its station's name and cannot change",
        ));
    }
    let op = Op::UpdateStation(wire::UpdateStation {
        name: id,
        settings: Some(wire::StationSettings::default()),
        description: topic.name,
    });
    topic_reply(call(&request, &state, op).await?, StatusCode::OK)
}

/// Produces one message. Its id is chosen here (a UUID v7, sent as the
/// message's msg-id, so it is the stored message's id) to answer with it;
/// `created_at` is when the proxy took the message.
pub async fn publish(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let caller = authenticated_caller(&request, &state).await?;
    let body = state
        .read_body(payload, state.config.max_single_body)
        .await?;
    let message = parse_json::<WrappedMessage>(&body)?.message;
    // The media type without parameters, as the produce routes keep it.
    let content_type = message
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if content_type.is_empty() {
        return Err(ProxyError::bad_request("\"content_type\" is empty"));
    }
    let data = Bytes::from(message.data);
    check_payload(&content_type, &data).map_err(ProxyError::BadRequest)?;
    let received_at_ms = depot_broker::clock::now_ms();
    let id = Uuid::now_v7().to_string();
    let new = NewMessage {
        msg_id: id.clone(),
        headers: Vec::new(),
        content_type: content_type.clone(),
        payload: data.clone(),
    };
    let outcomes = produce(&state, caller, message.topic_id.clone(), vec![new]).await?;
    let outcome = outcomes
        .into_iter()
        .next()
        .ok_or_else(|| ProxyError::Internal("the broker gave no outcome".into()))?;
    stored(outcome)?;
    Ok(HttpResponse::Created().json(json!({
        "id": id,
        "topic_id": message.topic_id,
        "content_type": content_type,
        "data": base64::engine::general_purpose::STANDARD.encode(&data),
        "created_at": time(received_at_ms),
    })))
}
