//! Status and health probes, and the console page (no authentication).

use actix_web::{HttpResponse, web};
use serde_json::json;

use depot_broker::auth::ROOT_USER;
use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{broker_link::Caller, routes::AppState};

pub async fn status() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /console`: a page to try Depot from a browser (log in, subscribe
/// over a WebSocket, produce with fetch()).
pub async fn console() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("console.html"))
}

/// The process is up.
pub async fn liveness() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready only while the broker answers.
pub async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    if state.link.ready().await {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({ "success": false, "error": "the broker is unreachable" }))
    }
}

/// Prometheus metrics, in the text exposition format: this proxy's
/// (`depot_proxy_*`) followed by the broker's (`depot_broker_*`: deliveries
/// per subscription), so one scrape of any proxy sees both.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = state.metrics.render();
    let op = Op::GetMetrics(wire::GetMetrics {});
    match state.link.call_as(Caller::internal(ROOT_USER), op).await {
        Ok(Reply::Metrics(broker)) => text.push_str(&broker.text),
        Ok(_) | Err(_) => text.push_str("# the broker's metrics are unavailable\n"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}
