//! Webhook subscriptions over HTTP (administrators only), shaped like the
//! webhook service of the seed (`/v1/subscriptions`, a body wrapped in
//! `{"subscription": {...}}`, delays and timeouts in seconds):
//!
//! | method & path                               | does                    |
//! |---------------------------------------------|-------------------------|
//! | `GET /v1/subscriptions?station=`            | list                    |
//! | `POST /v1/subscriptions`                    | create                  |
//! | `GET /v1/subscriptions/{id}`                | one (by id or name)     |
//! | `DELETE /v1/subscriptions/{id}`             | delete                  |
//! | `POST /v1/subscriptions/{id}/pause`, `/resume` | pause, resume        |
//! | `GET /v1/subscriptions/{id}/deliveries?status=&after=&limit=` | deliveries |
//! | `POST /v1/subscriptions/{id}/resend`        | `{"ids": [...]}` or `{"failed_since_ms": N}` |

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use depot_schemas::wire::{
    self, create_subscription::Start, request::Op, response::Result as Reply,
};

use crate::{
    body::read_limited,
    error::ProxyError,
    routes::{AppState, admin_call as call, auth::parse_json, unexpected},
};

const MAX_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped {
    subscription: NewSubscription,
}

/// The seed's fields (`id`, `topic_id`, `secret_token`,
/// `max_delivery_attempts`, `delivery_attempt_delay`,
/// `delivery_attempt_timeout`) and Depot's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    /// The seed's id: Depot's name (ids are Depot's own).
    #[serde(alias = "id")]
    name: String,
    #[serde(alias = "topic_id")]
    station: String,
    url: String,
    /// `whsec_...` (Standard Webhooks); never sent to the receiver.
    #[serde(default, alias = "secret_token")]
    secret: Option<String>,
    #[serde(default, alias = "max_delivery_attempts")]
    max_attempts: Option<u32>,
    /// Seconds between attempts (a fixed schedule).
    #[serde(default)]
    delivery_attempt_delay: Option<u64>,
    /// `0s,5s,30s,...` or `fixed:60s`.
    #[serde(default)]
    retry_schedule: Option<String>,
    /// Seconds per attempt.
    #[serde(default, alias = "delivery_attempt_timeout")]
    timeout: Option<u64>,
    #[serde(default)]
    format: Option<String>,
    /// `ordered` or `concurrent`.
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default)]
    filter: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    from_offset: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    station: String,
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resend {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    failed_since_ms: u64,
}

fn info_json(info: &wire::SubscriptionInfo) -> Value {
    json!({
        "id": info.id,
        "name": info.name,
        "station": info.station,
        "url": info.url,
        "secret": (!info.secret.is_empty()).then_some(&info.secret),
        "max_attempts": info.max_attempts,
        "retry_schedule_ms": info.retry_schedule_ms,
        "fixed_delay_ms": info.fixed_delay_ms,
        "timeout_ms": info.timeout_ms,
        "format": info.format,
        "filter": info.filter.iter().map(|h| (h.key.clone(), Value::String(h.value.clone()))).collect::<serde_json::Map<_, _>>(),
        "mode": if info.ordered { "ordered" } else { "concurrent" },
        "concurrency": info.concurrency,
        "paused": info.paused,
        "created_at_ms": info.created_at_ms,
        "created_by": info.created_by,
        "start_offset": info.start_offset,
        "cursor": info.cursor,
    })
}

fn subscription_reply(reply: Reply) -> Result<HttpResponse, ProxyError> {
    match reply {
        Reply::Subscription(info) => Ok(HttpResponse::Ok().json(info_json(&info))),
        other => Err(unexpected(other)),
    }
}

pub async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ProxyError> {
    let body = read_limited(payload, MAX_BODY).await?;
    let new = parse_json::<Wrapped>(&body)?.subscription;
    let retry_schedule = match (new.retry_schedule, new.delivery_attempt_delay) {
        (Some(_), Some(_)) => {
            return Err(ProxyError::bad_request(
                "give retry_schedule or delivery_attempt_delay, not both",
            ));
        }
        (Some(schedule), None) => schedule,
        (None, Some(seconds)) => format!("fixed:{seconds}s"),
        (None, None) => String::new(),
    };
    let ordered = match new.mode.as_deref() {
        None | Some("concurrent") => false,
        Some("ordered") => true,
        Some(other) => {
            return Err(ProxyError::bad_request(format!(
                "unknown mode '{other}': use ordered or concurrent"
            )));
        }
    };
    let op = Op::CreateSubscription(wire::CreateSubscription {
        name: new.name,
        station: new.station,
        url: new.url,
        secret: new.secret.unwrap_or_default(),
        max_attempts: new.max_attempts.unwrap_or(0),
        retry_schedule,
        timeout_ms: new.timeout.map_or(0, |s| s * 1000),
        format: new.format.unwrap_or_default(),
        filter: new
            .filter
            .into_iter()
            .map(|(key, value)| wire::Header { key, value })
            .collect(),
        ordered,
        concurrency: new.concurrency.unwrap_or(0),
        start: new.from_offset.map(Start::FromOffset),
    });
    match call(&request, &state, op).await? {
        Reply::Subscription(info) => Ok(HttpResponse::Created().json(info_json(&info))),
        other => Err(unexpected(other)),
    }
}

pub async fn list(
    request: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::ListSubscriptions(wire::ListSubscriptions {
        station: query.into_inner().station,
    });
    match call(&request, &state, op).await? {
        Reply::SubscriptionList(list) => Ok(HttpResponse::Ok().json(json!({
            "subscriptions": list.subscriptions.iter().map(info_json).collect::<Vec<_>>(),
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn describe(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DescribeSubscription(wire::DescribeSubscription {
        subscription: id.into_inner(),
    });
    subscription_reply(call(&request, &state, op).await?)
}

pub async fn pause(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::PauseSubscription(wire::PauseSubscription {
        subscription: id.into_inner(),
    });
    subscription_reply(call(&request, &state, op).await?)
}

pub async fn resume(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::ResumeSubscription(wire::ResumeSubscription {
        subscription: id.into_inner(),
    });
    subscription_reply(call(&request, &state, op).await?)
}

pub async fn delete(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DeleteSubscription(wire::DeleteSubscription {
        subscription: id.into_inner(),
    });
    call(&request, &state, op).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "error": null })))
}

pub async fn deliveries(
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let query = query.into_inner();
    let op = Op::ListDeliveries(wire::ListDeliveries {
        subscription: id.into_inner(),
        status: query.status,
        after_offset: query.after,
        limit: query.limit,
    });
    match call(&request, &state, op).await? {
        Reply::DeliveryList(list) => Ok(HttpResponse::Ok().json(json!({
            "deliveries": list.deliveries.iter().map(|d| json!({
                "id": d.id, "offset": d.offset, "message_id": d.message_id,
                "status": d.status, "delivery_attempts": d.attempts,
                "next_attempt_at_ms": d.next_attempt_at_ms,
                "created_at_ms": d.created_at_ms, "updated_at_ms": d.updated_at_ms,
                "last_status": d.last_status, "last_error": d.last_error,
            })).collect::<Vec<_>>(),
            "more": list.more,
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn resend(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ProxyError> {
    let body = read_limited(payload, MAX_BODY).await?;
    let resend: Resend = parse_json(&body)?;
    let op = Op::ResendDeliveries(wire::ResendDeliveries {
        subscription: id.into_inner(),
        delivery_ids: resend.ids,
        failed_since_ms: resend.failed_since_ms,
    });
    match call(&request, &state, op).await? {
        Reply::DeliveriesResent(resent) => Ok(HttpResponse::Ok().json(json!({
            "success": true, "error": null, "resent": resent.count,
        }))),
        other => Err(unexpected(other)),
    }
}
