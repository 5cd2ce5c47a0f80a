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
//! | `PATCH /v1/subscriptions/{id}`              | change (fields given)   |
//! | `POST /v1/subscriptions/{id}/pause`, `/resume` | pause, resume        |
//!
//! Deliveries and attempts are in [`super::deliveries`].

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use depot_schemas::wire::{
    self, create_subscription::Start, request::Op, response::Result as Reply,
};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, auth::parse_json, call_as_user as call, done, unexpected},
};

const MAX_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped {
    subscription: NewSubscription,
}

/// The seed's fields (`id`, `name`, `topic_id`, `secret_token`,
/// `max_delivery_attempts`, `delivery_attempt_delay`,
/// `delivery_attempt_timeout`) and Depot's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    /// The seed's id: Depot's name (ids are Depot's own).
    #[serde(default)]
    id: Option<String>,
    /// Depot's name; beside the seed's `id`, the seed's name for people:
    /// the description.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(alias = "topic_id")]
    station: String,
    url: String,
    /// `whsec_...` (Standard Webhooks) or a token whose bytes are the key;
    /// never sent to the receiver.
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
    /// Attempts per second at most.
    #[serde(default)]
    max_rate: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedChange {
    subscription: Change,
}

/// A change: every field optional; the seed's names are accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, alias = "secret_token")]
    secret: Option<String>,
    #[serde(default, alias = "max_delivery_attempts")]
    max_attempts: Option<u32>,
    #[serde(default)]
    delivery_attempt_delay: Option<u64>,
    #[serde(default)]
    retry_schedule: Option<String>,
    #[serde(default, alias = "delivery_attempt_timeout")]
    timeout: Option<u64>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    concurrency: Option<u32>,
    /// Replaces the filter (`{}` clears it).
    #[serde(default)]
    filter: Option<std::collections::BTreeMap<String, String>>,
    /// 0 removes the limit.
    #[serde(default)]
    max_rate: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    station: String,
}

impl NewSubscription {
    /// Depot's name and the description: `{"id", "name"?}` (the seed's
    /// form: the id names it, the name describes it) or `{"name",
    /// "description"?}` (Depot's).
    fn name_and_description(&self) -> Result<(String, String), ProxyError> {
        match (&self.id, &self.name, &self.description) {
            (Some(_), Some(_), Some(_)) => Err(ProxyError::bad_request(
                "with the seed's \"id\", \"name\" is the description: give it or \"description\", not both",
            )),
            (Some(id), seed_name, description) => Ok((
                id.clone(),
                seed_name
                    .clone()
                    .or(description.clone())
                    .unwrap_or_default(),
            )),
            (None, Some(name), description) => {
                Ok((name.clone(), description.clone().unwrap_or_default()))
            }
            (None, None, _) => Err(ProxyError::bad_request(
                "a subscription needs a \"name\" (or the seed's \"id\")",
            )),
        }
    }
}

fn info_json(info: &wire::SubscriptionInfo) -> Value {
    json!({
        "id": info.id,
        "name": info.name,
        "description": info.description,
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
        "max_rate": (info.max_rate > 0).then_some(info.max_rate),
        "circuit": info.circuit,
        "counts": info.counts.as_ref().map(|c| json!({
            "delivered": c.delivered, "dead_lettered": c.dead_lettered,
            "failed_attempts": c.failed_attempts, "retried": c.retried, "pending": c.pending,
        })),
    })
}

/// The seed's fixed delay in seconds, or Depot's schedule text.
fn schedule(
    text: Option<String>,
    fixed_seconds: Option<u64>,
) -> Result<Option<String>, ProxyError> {
    match (text, fixed_seconds) {
        (Some(_), Some(_)) => Err(ProxyError::bad_request(
            "give retry_schedule or delivery_attempt_delay, not both",
        )),
        (Some(schedule), None) => Ok(Some(schedule)),
        (None, Some(seconds)) => Ok(Some(format!("fixed:{seconds}s"))),
        (None, None) => Ok(None),
    }
}

fn ordered(mode: Option<&str>) -> Result<Option<bool>, ProxyError> {
    match mode {
        None => Ok(None),
        Some("concurrent") => Ok(Some(false)),
        Some("ordered") => Ok(Some(true)),
        Some(other) => Err(ProxyError::bad_request(format!(
            "unknown mode '{other}': use ordered or concurrent"
        ))),
    }
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
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
    let new = parse_json::<Wrapped>(&body)?.subscription;
    let (name, description) = new.name_and_description()?;
    let retry_schedule =
        schedule(new.retry_schedule, new.delivery_attempt_delay)?.unwrap_or_default();
    let ordered = ordered(new.mode.as_deref())?.unwrap_or(false);
    let op = Op::CreateSubscription(wire::CreateSubscription {
        name,
        description,
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
        max_rate: new.max_rate.unwrap_or(0),
    });
    match call(&request, &state, op).await? {
        Reply::Subscription(info) => Ok(HttpResponse::Created().json(info_json(&info))),
        other => Err(unexpected(other)),
    }
}

pub async fn update(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
    let change = parse_json::<WrappedChange>(&body)?.subscription;
    let op = Op::UpdateSubscription(wire::UpdateSubscription {
        subscription: id.into_inner(),
        name: change.name,
        description: change.description,
        url: change.url,
        secret: change.secret,
        max_attempts: change.max_attempts,
        retry_schedule: schedule(change.retry_schedule, change.delivery_attempt_delay)?,
        timeout_ms: change.timeout.map(|s| s * 1000),
        format: change.format,
        replace_filter: change.filter.is_some(),
        filter: change
            .filter
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| wire::Header { key, value })
            .collect(),
        ordered: ordered(change.mode.as_deref())?,
        concurrency: change.concurrency,
        max_rate: change.max_rate,
    });
    subscription_reply(call(&request, &state, op).await?)
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
    Ok(done())
}
