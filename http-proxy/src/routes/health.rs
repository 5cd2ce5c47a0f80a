//! Status and health probes (no authentication).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::routes::AppState;

pub async fn status() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
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

/// Prometheus metrics, in the text exposition format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
