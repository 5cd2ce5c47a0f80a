//! `depot-bench http --schema json|protobuf`: what schema validation costs.
//! The same realistic 10-field event (~200 B) is produced to a station
//! without a schema and to one with, over the same proxy in the same run;
//! the ratio is the figure. Singles and batches, embedded and remote.
//!
//! Protobuf singles are binary (`application/x-protobuf`, validated by
//! decoding); protobuf batches are JSON arrays, converted to protobuf by the
//! broker (the frontend path).

use base64::Engine as _;
use clap::ValueEnum;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

use crate::http::{HttpArgs, Mode, Run, Target, load, on_fresh_proxy, report};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    Json,
    Protobuf,
}

/// Ten fields: formats, an enum, a pattern, a nested object, numbers.
const EVENT_JSON_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["event_id", "user_id", "event", "ts", "page", "country", "device", "session", "amount", "consent"],
  "additionalProperties": false,
  "properties": {
    "event_id": {"type": "string", "format": "uuid"},
    "user_id": {"type": "integer", "minimum": 1},
    "event": {"type": "string", "enum": ["view", "click", "purchase"]},
    "ts": {"type": "string", "format": "date-time"},
    "page": {"type": "string", "maxLength": 200},
    "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
    "device": {
      "type": "object",
      "required": ["os"],
      "properties": {"os": {"type": "string"}, "version": {"type": "string"}}
    },
    "session": {"type": "string", "minLength": 1},
    "amount": {"type": "number", "minimum": 0},
    "consent": {"type": "boolean"}
  }
}"#;

const EVENT_PROTO: &str = r#"syntax = "proto3";
package bench.v1;
import "google/protobuf/timestamp.proto";

message Device {
  string os = 1;
  string version = 2;
}

message Event {
  string event_id = 1;
  uint64 user_id = 2;
  string event = 3;
  google.protobuf.Timestamp ts = 4;
  string page = 5;
  string country = 6;
  Device device = 7;
  string session = 8;
  double amount = 9;
  bool consent = 10;
}
"#;

const EVENT: &str = r#"{"event_id":"0195f2c4-7d2a-7c3e-9b1a-3f5e2d1c0b9a","user_id":48213,"event":"purchase","ts":"2026-11-23T10:00:00Z","page":"/checkout/confirm","country":"DE","device":{"os":"android","version":"14"},"session":"s-8f3a2b","amount":42.5,"consent":true}"#;

const JSON: &str = "application/json";
const PROTOBUF: &str = "application/x-protobuf";

/// The event in protobuf's binary form, encoded here as a producer would.
fn event_protobuf() -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("event.proto"), EVENT_PROTO).map_err(|e| e.to_string())?;
    let set = protox::compile(["event.proto"], [dir.path()]).map_err(|e| format!("{e:?}"))?;
    let pool = DescriptorPool::from_file_descriptor_set(set).map_err(|e| e.to_string())?;
    let descriptor = pool
        .get_message_by_name("bench.v1.Event")
        .ok_or("no bench.v1.Event")?;
    let mut json = serde_json::Deserializer::from_str(EVENT);
    let event = DynamicMessage::deserialize(descriptor, &mut json).map_err(|e| e.to_string())?;
    Ok(event.encode_to_vec())
}

/// One admin call to the proxy; any failure ends the benchmark.
fn admin(method: &str, url: String, token: &str, body: Value) -> Result<(), String> {
    let method = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let token = token.to_owned();
    actix_rt::System::new().block_on(async move {
        let mut response = awc::Client::default()
            .request(method, &url)
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send_json(&body)
            .await
            .map_err(|e| e.to_string())?;
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("{url}: {answer}"))
        }
    })
}

/// One load run of `case` against fresh processes on `data`, validated
/// when a schema is given.
fn measure_once(
    args: &HttpArgs,
    mode: Mode,
    case: &Case,
    data: &std::path::Path,
    schema: Option<&Value>,
) -> Result<Run, String> {
    on_fresh_proxy(args, mode, data, |addr, jwt, watched| {
        let station = match schema {
            Some(schema) => prepare_validated_station(addr, &jwt, schema)?,
            None => "bench.plain",
        };
        let target = Target {
            url: format!("http://{addr}/stations/{station}/{}", case.path),
            token: Some(jwt),
            content_type: case.content_type,
            body: case.body.clone(),
        };
        load(args, &target, None, watched)
    })
}

/// Creates the schema and a station validating against it; returns the
/// station's name.
fn prepare_validated_station(
    addr: std::net::SocketAddr,
    jwt: &str,
    schema: &Value,
) -> Result<&'static str, String> {
    let url = |path: &str| format!("http://{addr}{path}");
    admin("POST", url("/schemas"), jwt, schema.clone())?;
    // Produce once to create the station, then attach the schema.
    let first: Value = serde_json::from_str(&format!("[{EVENT}]")).map_err(|e| e.to_string())?;
    admin(
        "POST",
        url("/stations/bench.checked/produce/batch"),
        jwt,
        first,
    )?;
    admin(
        "PUT",
        url("/stations/bench.checked/schema"),
        jwt,
        json!({"schema": "event"}),
    )?;
    Ok("bench.checked")
}

/// One kind of request, sent to both stations.
struct Case {
    label: String,
    /// After `/stations/{station}/`.
    path: &'static str,
    content_type: &'static str,
    body: bytes::Bytes,
    messages: usize,
}

pub fn run(args: &HttpArgs, kind: SchemaKind) -> Result<(), String> {
    println!(
        "depot-bench http --schema {kind:?}: {} connections, {} B events, durable acks",
        args.connections,
        EVENT.len()
    );
    println!("machine: {}", crate::wire::machine());
    let json_batch = Case {
        label: format!("produce/batch of {} JSON", args.batch_size),
        path: "produce/batch",
        content_type: JSON,
        body: format!("[{}]", vec![EVENT; args.batch_size].join(",")).into(),
        messages: args.batch_size,
    };
    let cases = match kind {
        SchemaKind::Json => vec![
            Case {
                label: "produce/single JSON".into(),
                path: "produce/single",
                content_type: JSON,
                body: bytes::Bytes::from_static(EVENT.as_bytes()),
                messages: 1,
            },
            json_batch,
        ],
        SchemaKind::Protobuf => {
            let binary = event_protobuf()?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&binary);
            let element = json!({"payload": encoded, "content_type": PROTOBUF}).to_string();
            vec![
                Case {
                    label: "produce/single protobuf".into(),
                    path: "produce/single",
                    content_type: PROTOBUF,
                    body: binary.into(),
                    messages: 1,
                },
                Case {
                    label: format!("produce/batch of {} protobuf (envelopes)", args.batch_size),
                    path: "produce/batch?envelope=true",
                    content_type: JSON,
                    body: format!("[{}]", vec![element; args.batch_size].join(",")).into(),
                    messages: args.batch_size,
                },
                // Frontends sending JSON to a protobuf station: converted.
                Case {
                    label: format!("{} converted to protobuf", json_batch.label),
                    ..json_batch
                },
            ]
        }
    };
    let schema = match kind {
        SchemaKind::Json => json!({
            "name": "event", "type": "json",
            "definition": serde_json::from_str::<Value>(EVENT_JSON_SCHEMA).map_err(|e| e.to_string())?,
        }),
        SchemaKind::Protobuf => json!({
            "name": "event", "type": "protobuf",
            "definition": EVENT_PROTO, "message_type": "bench.v1.Event",
        }),
    };

    let workdir = tempfile::Builder::new()
        .prefix("depot-bench-schema-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    for mode in args.modes() {
        for (number, case) in cases.iter().enumerate() {
            // Each measurement on fresh processes and a fresh directory, so
            // neither side inherits the other's data (sled slows as its log
            // grows), and with the previous run's files deleted and the disk
            // synced first, so its writeback does not slow the next one.
            let mut runs = Vec::new();
            for validated in [false, true] {
                let data = workdir.path().join(format!("{mode}-{number}-{validated}"));
                runs.push(measure_once(
                    args,
                    mode,
                    case,
                    &data,
                    validated.then_some(&schema),
                )?);
            }
            report(
                &format!("{}, no schema, {mode}", case.label),
                &runs[0],
                case.messages,
                None,
            );
            report(
                &format!("{}, {kind:?} schema, {mode}", case.label),
                &runs[1],
                case.messages,
                Some((&runs[0], "unvalidated")),
            );
        }
    }
    Ok(())
}
