//! Consumer positions over HTTP: a reader names itself with
//! `GET /stations/{station}/messages?consumer=NAME` to start where it left
//! off, and commits the answer's `next_offset` once it has handled the
//! messages. Each call needs consume permission on the station.
//!
//! | method & path                                   | does                        |
//! |-------------------------------------------------|-----------------------------|
//! | `GET /stations/{station}/consumers`             | every position, with lag    |
//! | `GET /stations/{station}/consumers/{consumer}`  | one                         |
//! | `PUT /stations/{station}/consumers/{consumer}`  | `{"next_offset": N}`: commit |
//! | `DELETE /stations/{station}/consumers/{consumer}` | forget it                 |
//! | `POST /stations/{station}/consumers/{consumer}/ack` | `{"offsets": [..]}`: acknowledge a leased fetch's messages |
//! | `POST /stations/{station}/consumers/{consumer}/leases` | `{"leases": [{"offset", "deliveries"?}], "lease_ms"}`: leases end `lease_ms` from now (0: give the messages back) |
//!
//! Workers that share a consumer as a work queue fetch with
//! `?consumer=NAME&lease_ms=N` (each gets messages no other holds) and
//! acknowledge each message they handled; the position moves over the
//! acknowledged messages that follow it without a gap. A worker still busy
//! with a message extends its lease; one that cannot handle it gives it
//! back. `&max_deliveries=N` on the fetch makes a message handed out N
//! times unacknowledged a dead letter of the consumer.
//!
//! A consumer is the JSON of `depot consumers list --json`
//! ([`depot_broker::views::consumer`]).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use depot_broker::views;
use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, auth::parse_json, call_as_user as call, done, succeeded, unexpected},
};

const MAX_BODY: u64 = 4 * 1024;
/// An acknowledgement's body: room for the offsets of a 10,000-message
/// fetch, the most one fetch returns.
const MAX_ACK_BODY: u64 = 256 * 1024;
/// A lease change's body: room for 10,000 leases with their deliveries.
const MAX_LEASES_BODY: u64 = 512 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Commit {
    next_offset: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    offsets: Vec<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseChange {
    leases: Vec<Lease>,
    /// The leases end this long from now; 0 gives the messages back.
    lease_ms: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lease {
    offset: u64,
    /// As the fetch gave it, so that only the caller's lease changes.
    #[serde(default)]
    deliveries: u32,
}

async fn list_of(
    request: &HttpRequest,
    state: &AppState,
    station: String,
) -> Result<Vec<wire::ConsumerInfo>, ProxyError> {
    match call(
        request,
        state,
        Op::ListConsumers(wire::ListConsumers { station }),
    )
    .await?
    {
        Reply::ConsumerList(list) => Ok(list.consumers),
        other => Err(unexpected(other)),
    }
}

pub async fn list(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let consumers = list_of(&request, &state, station.into_inner()).await?;
    Ok(succeeded(json!({
        "consumers": consumers.iter().map(views::consumer).collect::<Vec<_>>(),
    })))
}

pub async fn show(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let (station, consumer) = path.into_inner();
    depot_broker::station::ConsumerName::parse(&consumer)
        .map_err(|e| ProxyError::bad_request(e.to_string()))?;
    let consumers = list_of(&request, &state, station.clone()).await?;
    match consumers.iter().find(|c| c.consumer == consumer) {
        Some(found) => Ok(succeeded(json!({ "consumer": views::consumer(found) }))),
        None => Err(ProxyError::NotFound(format!(
            "consumer {consumer} has no position in station {station}"
        ))),
    }
}

pub async fn commit(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let (station, consumer, Commit { next_offset }) =
        consumer_body(path, &state, payload, MAX_BODY).await?;
    let op = Op::CommitPosition(wire::CommitPosition {
        station,
        consumer,
        next_offset,
    });
    consumer_answer(call(&request, &state, op).await?)
}

/// A consumer route's station and consumer, and its JSON body of at most
/// `limit` bytes.
async fn consumer_body<T: DeserializeOwned>(
    path: web::Path<(String, String)>,
    state: &AppState,
    payload: RequestBody,
    limit: u64,
) -> Result<(String, String, T), ProxyError> {
    let (station, consumer) = path.into_inner();
    let body = state.read_body(payload, limit).await?;
    Ok((station, consumer, parse_json(&body)?))
}

/// 200 with the consumer the broker answered with.
fn consumer_answer(reply: Reply) -> Result<HttpResponse, ProxyError> {
    match reply {
        Reply::Consumer(info) => Ok(succeeded(json!({ "consumer": views::consumer(&info) }))),
        other => Err(unexpected(other)),
    }
}

pub async fn delete(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let (station, consumer) = path.into_inner();
    let op = Op::DeleteConsumer(wire::DeleteConsumer { station, consumer });
    call(&request, &state, op).await?;
    Ok(done())
}

pub async fn acknowledge(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let (station, consumer, Ack { offsets }) =
        consumer_body(path, &state, payload, MAX_ACK_BODY).await?;
    let op = Op::AckMessages(wire::AckMessages {
        station,
        consumer,
        offsets,
    });
    consumer_answer(call(&request, &state, op).await?)
}

pub async fn change_leases(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let (station, consumer, LeaseChange { leases, lease_ms }) =
        consumer_body(path, &state, payload, MAX_LEASES_BODY).await?;
    let op = Op::ChangeLeases(wire::ChangeLeases {
        station,
        consumer,
        leases: leases
            .into_iter()
            .map(|lease| wire::LeaseRef {
                offset: lease.offset,
                deliveries: lease.deliveries,
            })
            .collect(),
        lease_ms,
    });
    match call(&request, &state, op).await? {
        Reply::LeasesChanged(outcome) => Ok(succeeded(json!({
            "changed": outcome.changed,
            "lost": outcome.lost,
        }))),
        other => Err(unexpected(other)),
    }
}
