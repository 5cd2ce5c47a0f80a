//! JSON Schema stations: validation on every produce path, every failing
//! location reported, refused messages kept as dead letters.

use depot_broker::client::BrokerClient;
use depot_schemas::wire::{self, ErrorCode, produce_outcome::Outcome};

use crate::harness::{TestBroker, broker_refusal, fetch_all, json_message, stored_offset};

/// Required fields, nested objects, arrays, formats and `$ref`.
pub const ORDER_SCHEMA: &str = r##"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "customer", "items"],
  "properties": {
    "id": {"type": "string"},
    "customer": {
      "type": "object",
      "required": ["email"],
      "properties": {
        "email": {"type": "string", "format": "email"},
        "address": {"$ref": "#/$defs/address"}
      }
    },
    "items": {
      "type": "array",
      "minItems": 1,
      "items": {
        "type": "object",
        "required": ["sku", "qty"],
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
      }
    },
    "placed_at": {"type": "string", "format": "date-time"}
  },
  "$defs": {
    "address": {
      "type": "object",
      "required": ["zip"],
      "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}
    }
  }
}"##;

pub const VALID_ORDER: &str = r#"{"id":"o-1","customer":{"email":"ana@example.com","address":{"zip":"12345"}},"items":[{"sku":"a","qty":2}],"placed_at":"2026-11-23T10:00:00Z"}"#;

pub async fn create_json_schema(
    client: &BrokerClient,
    name: &str,
    source: &str,
) -> wire::SchemaInfo {
    client
        .create_schema(wire::CreateSchema {
            name: name.into(),
            r#type: wire::SchemaType::Json as i32,
            files: vec![wire::SchemaFile {
                name: format!("{name}.json"),
                content: source.into(),
            }],
            message_type: String::new(),
        })
        .await
        .unwrap()
}

pub async fn station_with_schema(client: &BrokerClient, station: &str, schema: &str) {
    client
        .create_station(station, wire::StationSettings::default())
        .await
        .unwrap();
    client.attach_schema(station, schema, 0).await.unwrap();
}

/// The error of a refused single message.
pub fn refusal(outcome: &wire::ProduceOutcome) -> &wire::Error {
    match &outcome.outcome {
        Some(Outcome::Error(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_messages_are_stored_and_every_failing_location_is_reported() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    create_json_schema(&client, "order", ORDER_SCHEMA).await;
    station_with_schema(&client, "orders", "order").await;

    let outcomes = client
        .produce("orders", vec![json_message(VALID_ORDER)])
        .await
        .unwrap();
    assert_eq!(stored_offset(&outcomes[0]), 0);

    let bad = r#"{"customer":{"email":"not-an-email","address":{"zip":"12"}},"items":[{"sku":"a","qty":0},{"qty":1}],"placed_at":"yesterday"}"#;
    let outcomes = client
        .produce("orders", vec![json_message(bad)])
        .await
        .unwrap();
    let error = refusal(&outcomes[0]);
    assert_eq!(error.code, ErrorCode::SchemaValidationFailed as i32);
    assert!(
        error.message.starts_with("Schema validation has failed: "),
        "{}",
        error.message
    );
    for location in [
        "'': \"id\" is a required property",
        "'/customer/email'",
        "'/customer/address/zip'",
        "'/items/0/qty'",
        "'/items/1': \"sku\" is a required property",
        "'/placed_at'",
    ] {
        assert!(
            error.message.contains(location),
            "{location} missing from: {}",
            error.message
        );
    }

    // Not JSON at all, and JSON that is no object.
    let text = wire::NewMessage {
        content_type: "text/plain".into(),
        payload: "hello".into(),
        ..Default::default()
    };
    let outcomes = client
        .produce(
            "orders",
            vec![text, json_message("[1,2]"), json_message("{not json")],
        )
        .await
        .unwrap();
    assert!(
        refusal(&outcomes[0])
            .message
            .contains("takes JSON payloads, not text/plain")
    );
    assert!(
        refusal(&outcomes[1])
            .message
            .contains("is not of type \"object\"")
    );
    assert!(
        refusal(&outcomes[2])
            .message
            .contains("the payload is not JSON")
    );

    // Only the valid message is in the station; the four refused ones are
    // dead letters, with their reasons, producer and bytes.
    let stored = fetch_all(&client, "orders", 0).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(&stored[0].payload[..], VALID_ORDER.as_bytes());
    let letters = client.list_dead_letters("orders", 0, 0).await.unwrap();
    assert_eq!(letters.dead_letters.len(), 4);
    let first = client
        .dead_letter("orders", letters.dead_letters[0].id)
        .await
        .unwrap();
    assert_eq!(&first.payload[..], bad.as_bytes());
    assert_eq!(first.producer, "root");
    assert_eq!((first.schema.as_str(), first.schema_version), ("order", 1));
    assert!(first.reason.contains("'/items/0/qty'"), "{}", first.reason);
}

#[tokio::test]
async fn every_supported_draft_is_honoured() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    // Draft 4: `exclusiveMaximum` is a boolean modifying `maximum`.
    let draft4 = r#"{"$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object", "properties": {"n": {"type": "number", "maximum": 10, "exclusiveMaximum": true}}}"#;
    // Draft 7: `if`/`then`.
    let draft7 = r#"{"$schema": "http://json-schema.org/draft-07/schema#",
        "if": {"properties": {"kind": {"const": "card"}}}, "then": {"required": ["pan"]}}"#;
    create_json_schema(&client, "d4", draft4).await;
    create_json_schema(&client, "d7", draft7).await;
    station_with_schema(&client, "s4", "d4").await;
    station_with_schema(&client, "s7", "d7").await;

    let outcomes = client
        .produce(
            "s4",
            vec![json_message(r#"{"n":9.5}"#), json_message(r#"{"n":10}"#)],
        )
        .await
        .unwrap();
    stored_offset(&outcomes[0]);
    assert!(refusal(&outcomes[1]).message.contains("'/n'"));

    let outcomes = client
        .produce(
            "s7",
            vec![
                json_message(r#"{"kind":"cash"}"#),
                json_message(r#"{"kind":"card"}"#),
            ],
        )
        .await
        .unwrap();
    stored_offset(&outcomes[0]);
    assert!(
        refusal(&outcomes[1])
            .message
            .contains("\"pan\" is a required property")
    );

    // Draft 6: `exclusiveMaximum` is a number; 2019-09: `dependentRequired`.
    let draft6 = r#"{"$schema": "http://json-schema.org/draft-06/schema#",
        "properties": {"n": {"exclusiveMaximum": 10}}}"#;
    let draft2019 = r#"{"$schema": "https://json-schema.org/draft/2019-09/schema",
        "dependentRequired": {"card": ["expiry"]}}"#;
    create_json_schema(&client, "d6", draft6).await;
    create_json_schema(&client, "d2019", draft2019).await;
    station_with_schema(&client, "s6", "d6").await;
    station_with_schema(&client, "s2019", "d2019").await;
    let outcomes = client
        .produce(
            "s6",
            vec![json_message(r#"{"n":9}"#), json_message(r#"{"n":10}"#)],
        )
        .await
        .unwrap();
    stored_offset(&outcomes[0]);
    assert!(refusal(&outcomes[1]).message.contains("'/n'"));
    let outcomes = client
        .produce(
            "s2019",
            vec![
                json_message(r#"{"card":"4111","expiry":"12/30"}"#),
                json_message(r#"{"card":"4111"}"#),
            ],
        )
        .await
        .unwrap();
    stored_offset(&outcomes[0]);
    assert!(
        refusal(&outcomes[1]).message.contains("expiry"),
        "{}",
        refusal(&outcomes[1]).message
    );
}

#[tokio::test]
async fn a_schema_that_does_not_compile_is_refused_and_nothing_is_stored() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let create = |source: &str| wire::CreateSchema {
        name: "broken".into(),
        r#type: wire::SchemaType::Json as i32,
        files: vec![wire::SchemaFile {
            name: "broken.json".into(),
            content: source.into(),
        }],
        message_type: String::new(),
    };
    for (source, expected) in [
        (
            r#"{"properties": {"a": {"type": "strin"}}}"#,
            "at '/properties/a/type'",
        ),
        ("{\n  \"type\": \"object\",\n  \"required\": [\n", "line 4"),
        (
            r#"{"$ref": "https://example.com/remote.json"}"#,
            "example.com",
        ),
    ] {
        let (code, message) = broker_refusal(client.create_schema(create(source)).await);
        assert_eq!(code, ErrorCode::InvalidSchema, "{message}");
        assert!(message.contains(expected), "{expected} not in: {message}");
    }
    assert!(client.list_schemas().await.unwrap().is_empty());
}

#[tokio::test]
async fn schemas_are_managed_from_the_cli() {
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("order.json");
    std::fs::write(&file, ORDER_SCHEMA).unwrap();
    let file = file.to_str().unwrap();

    let ok = |args: &[&str]| broker.cli_ok(args);
    ok(&[
        "schemas", "create", "order", "--type", "json", "--file", file,
    ]);
    ok(&["stations", "create", "orders"]);
    ok(&["stations", "attach-schema", "orders", "order"]);
    assert!(ok(&["stations", "info", "orders"]).contains("order (active version)"));

    let refused = broker.cli(&["produce", "orders", r#"{"id":"x"}"#]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("Schema validation has failed"), "{stderr}");
    ok(&["produce", "orders", VALID_ORDER]);

    let list = ok(&["--json", "dead-letters", "list", "orders"]);
    let letters: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = letters[0]["id"].as_u64().unwrap();
    let shown: serde_json::Value = serde_json::from_str(&ok(&[
        "--json",
        "dead-letters",
        "show",
        "orders",
        &id.to_string(),
    ]))
    .unwrap();
    assert_eq!(shown["payload"], r#"{"id":"x"}"#);
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .contains("\"customer\" is a required property")
    );

    // Still invalid: resend keeps it and fails.
    assert!(
        !broker
            .cli(&["dead-letters", "resend", "orders", &id.to_string()])
            .status
            .success()
    );
    // Loosen the schema; the resend now stores it.
    std::fs::write(dir.path().join("loose.json"), r#"{"type":"object"}"#).unwrap();
    let loose = dir.path().join("loose.json");
    ok(&[
        "schemas",
        "update",
        "order",
        "--file",
        loose.to_str().unwrap(),
    ]);
    assert!(
        ok(&["dead-letters", "resend", "orders", "--all"]).contains("1 resent, 0 still refused")
    );
    assert_eq!(
        ok(&["--json", "dead-letters", "list", "orders"]).trim(),
        "[]"
    );

    let info = ok(&["--json", "schemas", "info", "order"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["active_version"], 2);
    assert_eq!(info["stations"], serde_json::json!(["orders"]));

    let refused = broker.cli(&["schemas", "delete", "order"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("detach it first"));
    ok(&["stations", "detach-schema", "orders"]);
    ok(&["schemas", "delete", "order"]);
    assert_eq!(ok(&["--json", "schemas", "list"]).trim(), "[]");
}
