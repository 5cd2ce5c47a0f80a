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
