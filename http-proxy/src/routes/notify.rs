//! `POST /users/{user}/notify` and `POST /connections/{id}/notify` with
//! `{"data": ...}`: pushed to every live WebSocket connection of the user,
//! or to that one connection, on whichever proxy holds it. For
//! administrators and users with the notify right; the answer says how many
//! connections got it.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use depot_schemas::wire::{self, notify::Target, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, auth::parse_json, call_as_user, unexpected},
};

const MAX_BODY: u64 = 64 * 1024 + 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    data: Value,
}

async fn notify(
    request: &HttpRequest,
    state: &AppState,
    payload: RequestBody,
    target: Target,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
    let Body { data } = parse_json(&body)?;
    let op = Op::Notify(wire::Notify {
        target: Some(target),
        data: data.to_string().into_bytes().into(),
    });
    match call_as_user(request, state, op).await? {
        Reply::Notified(notified) => Ok(HttpResponse::Ok().json(json!({
            "success": true, "error": null, "delivered": notified.delivered,
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn user(
    request: HttpRequest,
    user: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    notify(&request, &state, payload, Target::User(user.into_inner())).await
}

pub async fn connection(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let target = Target::Connection(id.into_inner());
    notify(&request, &state, payload, target).await
}
