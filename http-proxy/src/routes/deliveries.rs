//! Webhook deliveries and their attempts over HTTP (administrators only),
//! shaped like the seed's `/v1/deliveries/{id}` and
//! `/v1/delivery-attempts/{id}` (times in RFC 3339, durations in ms, the
//! message as `data` in base64), with Depot's fields added:
//!
//! | method & path                                   | does                  |
//! |-------------------------------------------------|-----------------------|
//! | `GET /v1/deliveries?subscription_id=&status=&after=&limit=` | list (all subscriptions, or one) |
//! | `GET /v1/subscriptions/{id}/deliveries?status=&after=&limit=` | list one subscription's |
//! | `GET /v1/deliveries/{id}`                       | one delivery          |
//! | `GET /v1/delivery-attempts?delivery_id=`        | a delivery's attempts |
//! | `GET /v1/delivery-attempts/{id}`                | one attempt           |
//! | `POST /v1/subscriptions/{id}/resend`            | `{"ids": [...]}` or `{"failed_since_ms": N}` |
//!
//! Pages: `after` is the last delivery id of the previous page; `more`
//! says whether to ask again.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, auth::parse_json, call_as_user as call, unexpected},
};

const MAX_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default, alias = "subscription")]
    subscription_id: String,
    #[serde(default)]
    status: String,
    /// A delivery id: list the ones after it.
    #[serde(default)]
    after: String,
    #[serde(default)]
    limit: u32,
}

#[derive(Debug, Deserialize)]
pub struct AttemptsQuery {
    delivery_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Resend {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    failed_since_ms: u64,
}

/// A time as RFC 3339, or none for 0 (never).
fn rfc3339(ms: u64) -> Option<String> {
    (ms > 0).then(|| depot_broker::views::time(ms))
}

fn delivery_json(d: &wire::Delivery) -> Value {
    json!({
        "id": d.id,
        "subscription_id": d.subscription_id,
        "offset": d.offset,
        "message_id": d.message_id,
        "status": d.status,
        "delivery_attempts": d.attempts,
        "scheduled_at": (d.status == "pending").then(|| rfc3339(d.next_attempt_at_ms)).flatten(),
        "created_at": rfc3339(d.created_at_ms),
        "updated_at": rfc3339(d.updated_at_ms),
        "last_status": (d.last_status > 0).then_some(d.last_status),
        "last_error": (!d.last_error.is_empty()).then_some(&d.last_error),
    })
}

/// The attempt as the seed shows it (raw `request` and `response` text)
/// and field by field.
fn attempt_json(a: &wire::DeliveryAttempt) -> Value {
    let headers = |list: &[wire::Header]| {
        list.iter()
            .map(|h| (h.key.clone(), Value::String(h.value.clone())))
            .collect::<serde_json::Map<_, _>>()
    };
    let head = |first: &str, list: &[wire::Header]| {
        let mut text = format!("{first}\r\n");
        for h in list {
            text.push_str(&format!("{}: {}\r\n", h.key, h.value));
        }
        text
    };
    let body = String::from_utf8_lossy(&a.response_body);
    let response = (a.response_status > 0).then(|| {
        format!(
            "{}\r\n{body}",
            head(
                &format!("HTTP/1.1 {}", a.response_status),
                &a.response_headers
            )
        )
    });
    json!({
        "id": a.id,
        "delivery_id": a.delivery_id,
        "number": a.number,
        "request": head(&a.request_line, &a.request_headers),
        "request_headers": headers(&a.request_headers),
        "response": response,
        "response_status_code": (a.response_status > 0).then_some(a.response_status),
        "response_headers": headers(&a.response_headers),
        "response_body": body,
        "execution_duration": a.duration_ms,
        "success": a.success,
        "error": (!a.error.is_empty()).then_some(&a.error),
        "created_at": rfc3339(a.at_ms),
    })
}

async fn list_reply(
    request: &HttpRequest,
    state: &AppState,
    list: wire::ListDeliveries,
) -> Result<HttpResponse, ProxyError> {
    match call(request, state, Op::ListDeliveries(list)).await? {
        Reply::DeliveryList(list) => Ok(HttpResponse::Ok().json(json!({
            "deliveries": list.deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
            "more": list.more,
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn list(
    request: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let query = query.into_inner();
    let list = wire::ListDeliveries {
        subscription: query.subscription_id,
        status: query.status,
        after_offset: None,
        limit: query.limit,
        after_id: query.after,
    };
    list_reply(&request, &state, list).await
}

pub async fn list_of_subscription(
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let query = query.into_inner();
    let list = wire::ListDeliveries {
        subscription: id.into_inner(),
        status: query.status,
        after_offset: None,
        limit: query.limit,
        after_id: query.after,
    };
    list_reply(&request, &state, list).await
}

async fn detail(
    request: &HttpRequest,
    state: &AppState,
    id: String,
) -> Result<wire::DeliveryDetail, ProxyError> {
    match call(request, state, Op::GetDelivery(wire::GetDelivery { id })).await? {
        Reply::DeliveryDetail(detail) => Ok(detail),
        other => Err(unexpected(other)),
    }
}

pub async fn show(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let detail = detail(&request, &state, id.into_inner()).await?;
    let mut value = delivery_json(&detail.delivery.unwrap_or_default());
    value["subscription_name"] = detail.subscription_name.into();
    value["topic_id"] = detail.station.clone().into();
    value["station"] = detail.station.into();
    value["url"] = detail.url.into();
    value["max_delivery_attempts"] = detail.max_attempts.into();
    if detail.message_retained {
        value["content_type"] = detail.content_type.into();
        value["data"] = base64::engine::general_purpose::STANDARD
            .encode(&detail.data)
            .into();
    }
    Ok(HttpResponse::Ok().json(value))
}

pub async fn attempts(
    request: HttpRequest,
    query: web::Query<AttemptsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let detail = detail(&request, &state, query.into_inner().delivery_id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "delivery_attempts": detail.attempts.iter().map(attempt_json).collect::<Vec<_>>(),
    })))
}

pub async fn show_attempt(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::GetDeliveryAttempt(wire::GetDeliveryAttempt {
        id: id.into_inner(),
    });
    match call(&request, &state, op).await? {
        Reply::DeliveryAttempt(attempt) => Ok(HttpResponse::Ok().json(attempt_json(&attempt))),
        other => Err(unexpected(other)),
    }
}

pub async fn resend(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
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
