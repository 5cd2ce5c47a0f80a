//! Users over HTTP (administrators only, but a user may end its own
//! sessions; the broker checks the token's user on every call), for
//! operators without the CLI:
//!
//! | method & path           | does                                          |
//! |-------------------------|-----------------------------------------------|
//! | `GET /users`            | list (never a secret or its hash)             |
//! | `POST /users`           | create: `{"name", "password"?, "connection_token"?, "produce"?, "consume"?, "create_stations"?, "notify"?, "admin"?}` |
//! | `PATCH /users/{name}`   | change the secrets or permissions given       |
//! | `DELETE /users/{name}`  | delete: its tokens stop working at once       |
//! | `POST /users/{name}/end-sessions` | end every session begun until now (its secrets stay) |
//!
//! A user is the JSON of `depot --json users list`
//! ([`depot_broker::views::user`]).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use depot_broker::{auth::permissions_change::PermissionsChange, views};
use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, auth::parse_json, call_as_user as call, done, succeeded, unexpected},
};

const MAX_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    connection_token: String,
    #[serde(default)]
    produce: Vec<String>,
    #[serde(default)]
    consume: Vec<String>,
    #[serde(default)]
    create_stations: bool,
    #[serde(default)]
    notify: bool,
    #[serde(default)]
    admin: bool,
}

/// What is given changes; `""` removes a secret, `[""]` clears a list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    connection_token: Option<String>,
    #[serde(default)]
    produce: Option<Vec<String>>,
    #[serde(default)]
    consume: Option<Vec<String>>,
    #[serde(default)]
    create_stations: Option<bool>,
    #[serde(default)]
    notify: Option<bool>,
    #[serde(default)]
    admin: Option<bool>,
}

fn user_reply(reply: Reply) -> Result<HttpResponse, ProxyError> {
    match reply {
        Reply::User(info) => Ok(succeeded(json!({
            "user": views::user(&info),
        }))),
        other => Err(unexpected(other)),
    }
}

async fn all_users(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Vec<wire::UserInfo>, ProxyError> {
    match call(request, state, Op::ListUsers(wire::ListUsers {})).await? {
        Reply::UserList(list) => Ok(list.users),
        other => Err(unexpected(other)),
    }
}

pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let users = all_users(&request, &state).await?;
    Ok(succeeded(json!({
        "users": users.iter().map(views::user).collect::<Vec<_>>(),
    })))
}

pub async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
    let new: NewUser = parse_json(&body)?;
    let op = Op::CreateUser(wire::CreateUser {
        name: new.name,
        password: new.password,
        connection_token: new.connection_token,
        permissions: Some(wire::Permissions {
            produce: new.produce,
            consume: new.consume,
            create_stations: new.create_stations,
            admin: new.admin,
            notify: new.notify,
        }),
    });
    user_reply(call(&request, &state, op).await?)
}

pub async fn update(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_BODY).await?;
    let change: Change = parse_json(&body)?;
    let name = name.into_inner();
    let permissions_change = PermissionsChange {
        produce: change.produce,
        consume: change.consume,
        create_stations: change.create_stations,
        admin: change.admin,
        notify: change.notify,
    };
    // Permissions travel whole: start from the current ones.
    let permissions = if permissions_change.is_empty() {
        None
    } else {
        let current = all_users(&request, &state)
            .await?
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| ProxyError::NotFound(format!("user '{name}' does not exist")))?
            .permissions
            .unwrap_or_default();
        Some(permissions_change.apply(current))
    };
    let op = Op::UpdateUser(wire::UpdateUser {
        name,
        password: change.password,
        connection_token: change.connection_token,
        permissions,
    });
    user_reply(call(&request, &state, op).await?)
}

pub async fn delete(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DeleteUser(wire::DeleteUser {
        name: name.into_inner(),
    });
    call(&request, &state, op).await?;
    Ok(done())
}

/// Ends every session of the user begun until now: its tokens are refused
/// and its WebSockets closed on every proxy (`depot users end-sessions`).
pub async fn end_sessions(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::EndSessions(wire::EndSessions {
        user: name.into_inner(),
    });
    call(&request, &state, op).await?;
    Ok(done())
}
