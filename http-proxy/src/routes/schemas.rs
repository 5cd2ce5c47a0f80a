//! Schema administration over HTTP (administrators only; the broker checks
//! the permission of the token's user on every call):
//!
//! | method & path                         | does                            |
//! |---------------------------------------|---------------------------------|
//! | `GET /schemas`                        | list                            |
//! | `POST /schemas`                       | create (version 1)              |
//! | `GET /schemas/{name}`                 | versions with sources, stations |
//! | `POST /schemas/{name}/versions`       | add a version (becomes active)  |
//! | `POST /schemas/{name}/rollback`       | `{"version": N}` becomes active |
//! | `DELETE /schemas/{name}`              | delete (refused while attached) |
//! | `PUT /stations/{station}/schema`      | `{"schema", "version"?}` attach |
//! | `DELETE /stations/{station}/schema`   | detach                          |
//!
//! A definition is `"definition"`: the JSON Schema itself (an object) or one
//! source text, or `"files": [{"name", "content"}]` for protobuf schemas
//! made of several files; protobuf needs `"message_type"` at creation.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{
    body::RequestBody,
    error::ProxyError,
    routes::{AppState, auth::parse_json, call_as_user as call, done, succeeded, unexpected},
};

/// Largest schema definition body accepted.
const MAX_SCHEMA_BODY: u64 = 4 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Definition {
    #[serde(default)]
    definition: Option<Value>,
    #[serde(default)]
    files: Vec<SourceFile>,
    #[serde(default)]
    message_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    name: String,
    content: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSchema {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    // Not `#[serde(flatten)]` of a `Definition`: serde cannot combine
    // flatten with deny_unknown_fields.
    #[serde(default)]
    definition: Option<Value>,
    #[serde(default)]
    files: Vec<SourceFile>,
    #[serde(default)]
    message_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    version: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attach {
    schema: String,
    #[serde(default)]
    version: Option<u32>,
}

impl Definition {
    /// The files of the definition; a lone `definition` is named after the
    /// schema.
    fn files(
        self,
        schema: &str,
        kind: wire::SchemaType,
    ) -> Result<Vec<wire::SchemaFile>, ProxyError> {
        let single = match self.definition {
            None => None,
            Some(Value::String(text)) => Some(text),
            Some(value @ Value::Object(_)) if kind != wire::SchemaType::Protobuf => {
                Some(value.to_string())
            }
            Some(_) => {
                return Err(ProxyError::bad_request(
                    "\"definition\" is a JSON Schema object or a source text",
                ));
            }
        };
        let extension = if kind == wire::SchemaType::Protobuf {
            "proto"
        } else {
            "json"
        };
        match (single, self.files.is_empty()) {
            (Some(content), true) => Ok(vec![wire::SchemaFile {
                name: format!("{schema}.{extension}"),
                content,
            }]),
            (None, false) => Ok(self
                .files
                .into_iter()
                .map(|f| wire::SchemaFile {
                    name: f.name,
                    content: f.content,
                })
                .collect()),
            _ => Err(ProxyError::bad_request(
                "give the schema as \"definition\" or as \"files\", not both or neither",
            )),
        }
    }
}

fn schema_type(kind: &str) -> Result<wire::SchemaType, ProxyError> {
    match kind {
        "json" => Ok(wire::SchemaType::Json),
        "protobuf" => Ok(wire::SchemaType::Protobuf),
        other => Err(ProxyError::bad_request(format!(
            "unknown schema type '{other}': use json or protobuf"
        ))),
    }
}

fn schema_reply(reply: Reply) -> Result<HttpResponse, ProxyError> {
    match reply {
        Reply::Schema(info) => Ok(succeeded(json!({
            "schema": schema_json(&info),
        }))),
        other => Err(unexpected(other)),
    }
}

pub fn schema_json(info: &wire::SchemaInfo) -> Value {
    let kind = match info.r#type() {
        wire::SchemaType::Json => "json",
        wire::SchemaType::Protobuf => "protobuf",
        wire::SchemaType::Unspecified => "unspecified",
    };
    json!({
        "name": info.name,
        "type": kind,
        "active_version": info.active_version,
        "created_at_ms": info.created_at_ms,
        "stations": info.stations,
        "versions": info.versions.iter().map(|v| json!({
            "version": v.version,
            "created_at_ms": v.created_at_ms,
            "created_by": v.created_by,
            "message_type": v.message_type,
            "files": v.files.iter().map(|f| json!({"name": f.name, "content": f.content})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    match call(&request, &state, Op::ListSchemas(wire::ListSchemas {})).await? {
        Reply::SchemaList(list) => Ok(succeeded(json!({
            "schemas": list.schemas.iter().map(schema_json).collect::<Vec<_>>(),
        }))),
        other => Err(unexpected(other)),
    }
}

pub async fn create(
    request: HttpRequest,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_SCHEMA_BODY).await?;
    let new: NewSchema = parse_json(&body)?;
    let kind = schema_type(&new.kind)?;
    let definition = Definition {
        definition: new.definition,
        files: new.files,
        message_type: String::new(),
    };
    let op = Op::CreateSchema(wire::CreateSchema {
        files: definition.files(&new.name, kind)?,
        name: new.name,
        r#type: kind as i32,
        message_type: new.message_type,
    });
    schema_reply(call(&request, &state, op).await?)
}

pub async fn describe(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DescribeSchema(wire::DescribeSchema {
        name: name.into_inner(),
    });
    schema_reply(call(&request, &state, op).await?)
}

pub async fn add_version(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_SCHEMA_BODY).await?;
    let definition: Definition = parse_json(&body)?;
    let name = name.into_inner();
    // The type decides how a lone definition is read; ask for it first.
    let current = call(
        &request,
        &state,
        Op::DescribeSchema(wire::DescribeSchema { name: name.clone() }),
    );
    let kind = match current.await? {
        Reply::Schema(info) => info.r#type(),
        other => return Err(unexpected(other)),
    };
    let message_type = definition.message_type.clone();
    let op = Op::UpdateSchema(wire::UpdateSchema {
        files: definition.files(&name, kind)?,
        name,
        message_type,
    });
    schema_reply(call(&request, &state, op).await?)
}

pub async fn rollback(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_SCHEMA_BODY).await?;
    let rollback: Rollback = parse_json(&body)?;
    let op = Op::RollbackSchema(wire::RollbackSchema {
        name: name.into_inner(),
        version: rollback.version,
    });
    schema_reply(call(&request, &state, op).await?)
}

pub async fn delete(
    request: HttpRequest,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DeleteSchema(wire::DeleteSchema {
        name: name.into_inner(),
    });
    call(&request, &state, op).await?;
    Ok(done())
}

pub async fn attach(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
    payload: RequestBody,
) -> Result<HttpResponse, ProxyError> {
    let body = state.read_body(payload, MAX_SCHEMA_BODY).await?;
    let attach: Attach = parse_json(&body)?;
    let op = Op::AttachSchema(wire::AttachSchema {
        station: station.into_inner(),
        schema: Some(wire::SchemaAttachment {
            schema: attach.schema,
            version: attach.version.unwrap_or(0),
        }),
    });
    call(&request, &state, op).await?;
    Ok(done())
}

pub async fn detach(
    request: HttpRequest,
    station: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ProxyError> {
    let op = Op::DetachSchema(wire::DetachSchema {
        station: station.into_inner(),
    });
    call(&request, &state, op).await?;
    Ok(done())
}
