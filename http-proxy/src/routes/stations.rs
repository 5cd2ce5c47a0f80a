//! Stations over HTTP, for operators without the CLI and for clients that
//! read back what they produced. The broker checks the token's user on
//! every call: listing shows the stations it may produce to or consume
//! from, creating needs the create-stations right, changing and deleting
//! need admin, describing needs produce or consume, fetching consume.
//!
//! | method & path                     | does                                 |
//! |-----------------------------------|--------------------------------------|
//! | `GET /stations`                   | list, with settings and counters     |
//! | `POST /stations`                  | `{"name", "description"?, "settings"?}` |
//! | `GET /stations/{name}`            | one station                          |
//! | `PATCH /stations/{name}`          | `{"description"?, "settings"?}`      |
//! | `DELETE /stations/{name}`         | delete it and its messages           |
//! | `GET /stations/{name}/messages`   | `?from=&limit=&max_bytes=&wait_ms=` fetch; `?consumer=` instead of `from`: where that consumer left off, `&lease_ms=` to share it with other workers, `&max_deliveries=` to dead-letter a message handed out that often ([`super::consumers`]) |
//! | `DELETE /stations/{name}/messages` | purge: remove every stored message, or those below `?before=`; the station stays |
//!
//! A station is the JSON of `depot stations info --json`
//! ([`depot_broker::views::station`]); a message is the WebSocket push's
//! ([`crate::message_view`]).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use depot_broker::views;
use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    message_view::stored_message,
    routes::{AppState, auth::parse_json, call_as_user as call, done, succeeded, unexpected},
};

const MAX_BODY: u64 = 64 * 1024;

/// Station settings as `views::station` prints them; absent ones keep
/// their value (or the default, at creation).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    retention_age_ms: Option<u64>,
    #[serde(default)]
    retention_messages: Option<u64>,
    #[serde(default)]
    retention_bytes: Option<u64>,
    #[serde(default)]
    idempotency_window_ms: Option<u64>,
    #[serde(default)]
    max_message_bytes: Option<u64>,
    #[serde(default)]
    dead_letter_retention_ms: Option<u64>,
    #[serde(default)]
    keep_dead_letters: Option<bool>,
    #[serde(default)]
    notify_connections: Option<bool>,
}

impl Settings {
    fn to_wire(&self) -> wire::StationSettings {
        wire::StationSettings {
            retention_age_ms: self.retention_age_ms,
            retention_messages: self.retention_messages,
            retention_bytes: self.retention_bytes,
            idempotency_window_ms: self.idempotency_window_ms,
            max_message_bytes: self.max_message_bytes,
            dead_letter_retention_ms: self.dead_letter_retention_ms,
            keep_dead_letters: self.keep_dead_letters,
            notify_connections: self.notify_connections,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStation {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    /// Replaces the description (`""` clears it).
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    /// The first offset wanted (default 0: the oldest stored).
    from: Option<u64>,
    /// Start at this consumer's position instead (not with `from`).
    consumer: Option<String>,
    /// At most this many messages (0: the broker's default, 100; at most
    /// 10,000).
    #[serde(default)]
    limit: u32,
    /// At most about this many payload bytes (0: the broker's default,
    /// 1 MiB); at least one message comes when one is there.
    #[serde(default)]
    max_bytes: u64,
    /// With `consumer`: lease the messages to this caller for this many
    /// milliseconds, sharing the consumer with other workers (a work queue;
    /// acknowledge with `POST .../consumers/{consumer}/ack`).
    #[serde(default)]
    lease_ms: u32,
    /// With `lease_ms`: a message whose lease ended this many times without
    /// an acknowledgement becomes a dead letter of the consumer instead of
    /// coming again (0: no limit).
    #[serde(default)]
    max_deliveries: u32,
    /// A long poll: when nothing is stored at `from` yet, wait up to this
    /// many milliseconds for a message to land there (0: answer at once; at
    /// most the broker's `--max-fetch-wait`, 30 s by default).
    #[serde(default)]
    wait_ms: u64,
    /// The access token, when it comes in the query (browsers).
    #[serde(default, rename = "authorization")]
    _authorization: Option<String>,
}

fn station_reply(reply: Reply) -> Result<HttpResponse, ProxyError> {
    match reply {
        Reply::Station(info) => Ok(succeeded(json!({
            "station": views::station(&info),
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    match call(&request, &state, Op::ListStations(wire::ListStations {})).await? {
        Reply::StationList(list) => Ok(succeeded(json!({
            "stations": list.stations.iter().map(views::station).collect::<Vec<_>>(),
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
    let new: NewStation = parse_json(&body)?;
    let op = Op::CreateStation(wire::CreateStation {
        name: new.name,
        settings: Some(new.settings.to_wire()),
        description: new.description,
    });
    station_reply(call(&request, &state, op).await?)
}

pub async fn describe(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DescribeStation(wire::DescribeStation {
        name: station.into_inner(),
    });
    station_reply(call(&request, &state, op).await?)
}

pub async fn update(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
    let change: Change = parse_json(&body)?;
    let op = Op::UpdateStation(wire::UpdateStation {
        name: station.into_inner(),
        settings: Some(change.settings.to_wire()),
        description: change.description,
    });
    station_reply(call(&request, &state, op).await?)
}

pub async fn delete(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DeleteStation(wire::DeleteStation {
        name: station.into_inner(),
    });
    call(&request, &state, op).await?;
    Ok(done())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeQuery {
    /// Remove the messages below this offset (default: every stored one).
    before: Option<u64>,
    /// The access token, when it comes in the query (browsers).
    #[serde(default, rename = "authorization")]
    _authorization: Option<String>,
}

pub async fn purge(
    request: HttpRequest,
    station: web::Path<String>,
    query: web::Query<PurgeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::PurgeStation(wire::PurgeStation {
        name: station.into_inner(),
        before_offset: query.before,
    });
    match call(&request, &state, op).await? {
        Reply::Purged(purged) => Ok(succeeded(json!({
            "removed": purged.removed,
            "first_offset": purged.first_offset,
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn fetch(
    request: HttpRequest,
    station: web::Path<String>,
    query: web::Query<FetchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let station = station.into_inner();
    if query.from.is_some() && query.consumer.is_some() {
        return Err(ProxyError::bad_request(
            "fetch from an offset (from=) or from a consumer's position (consumer=), not both",
        ));
    }
    let _place = match query.wait_ms {
        0 => None,
        _ => Some(waiting_place(&state)?),
    };
    let op = Op::Fetch(wire::Fetch {
        station: station.clone(),
        from_offset: query.from.unwrap_or(0),
        consumer: query.consumer.clone().unwrap_or_default(),
        max_messages: query.limit,
        max_bytes: query.max_bytes,
        max_wait_ms: u32::try_from(query.wait_ms).unwrap_or(u32::MAX),
        lease_ms: query.lease_ms,
        max_deliveries: query.max_deliveries,
        ..Default::default()
    });
    let reply = tokio::select! {
        reply = call(&request, &state, op) => reply?,
        () = state.closing.cancelled(), if query.wait_ms > 0 => {
            return Err(ProxyError::Unavailable(
                "the proxy is shutting down: fetch again from another".into(),
            ));
        }
    };
    match reply {
        Reply::FetchResult(fetched) => Ok(succeeded(json!({
            "messages": fetched
                .messages
                .iter()
                .map(|m| stored_message(&station, m))
                .collect::<Vec<_>>(),
            "next_offset": fetched.next_offset,
            "head_offset": fetched.head_offset,
        }))),
        other => Err(unexpected(other)),
    }
}

/// A place for a fetch that waits for messages, or 429 when
/// `--http-max-waiting-fetches` are waiting.
fn waiting_place(state: &AppState) -> Result<crate::places::Place, ProxyError> {
    let limit = state.config.http_max_waiting_fetches;
    state.waiting_fetches.take(limit).ok_or_else(|| {
        ProxyError::TooManyRequests(format!(
            "this proxy already holds its maximum of {limit} waiting fetches \
             (--http-max-waiting-fetches): fetch without wait_ms, or later"
        ))
    })
}
