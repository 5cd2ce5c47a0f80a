//! Protobuf stations: schemas compiled at run time from several files,
//! binary payloads checked strictly, JSON converted to protobuf.

use depot_broker::client::BrokerClient;
use depot_schemas::wire::{self, ErrorCode};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};

use crate::{
    harness::{TestBroker, broker_refusal, fetch_all, stored_offset},
    schemas_json::{refusal, station_with_schema},
};

const COMMON_PROTO: &str = r#"syntax = "proto3";
package shop.v1;
message Money {
  string currency = 1;
  int64 units = 2;
}
"#;

const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop.v1;
import "shop/common.proto";
import "google/protobuf/timestamp.proto";

enum Status {
  STATUS_UNSPECIFIED = 0;
  PLACED = 1;
  PAID = 2;
}

message Line {
  string sku = 1;
  uint32 qty = 2;
  Money price = 3;
}

message Order {
  string id = 1;
  Status status = 2;
  repeated Line lines = 3;
  map<string, string> labels = 4;
  map<string, Money> fees = 5;
  oneof contact {
    string email = 6;
    string phone = 7;
  }
  google.protobuf.Timestamp placed_at = 8;
}
"#;

const ORDER_JSON: &str = r#"{
  "id": "o-1",
  "status": "PAID",
  "lines": [
    {"sku": "apple", "qty": 3, "price": {"currency": "EUR", "units": "2"}},
    {"sku": "pear", "qty": 1}
  ],
  "labels": {"channel": "web"},
  "fees": {"shipping": {"currency": "EUR", "units": "5"}},
  "email": "ana@example.com",
  "placed_at": "2026-11-23T10:00:00Z"
}"#;

fn files() -> Vec<wire::SchemaFile> {
    vec![
        wire::SchemaFile {
            name: "shop/order.proto".into(),
            content: ORDER_PROTO.into(),
        },
        wire::SchemaFile {
            name: "shop/common.proto".into(),
            content: COMMON_PROTO.into(),
        },
    ]
}

/// The producer's own view of the schema, compiled independently.
fn order_descriptor() -> MessageDescriptor {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shop")).unwrap();
    std::fs::write(dir.path().join("shop/common.proto"), COMMON_PROTO).unwrap();
    std::fs::write(dir.path().join("shop/order.proto"), ORDER_PROTO).unwrap();
    let set = protox::compile(["shop/order.proto"], [dir.path()]).unwrap();
    let pool = DescriptorPool::from_file_descriptor_set(set).unwrap();
    pool.get_message_by_name("shop.v1.Order").unwrap()
}

fn from_json(descriptor: &MessageDescriptor, json: &str) -> DynamicMessage {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    DynamicMessage::deserialize(descriptor.clone(), &mut deserializer).unwrap()
}

fn message(content_type: &str, payload: impl Into<bytes::Bytes>) -> wire::NewMessage {
    wire::NewMessage {
        content_type: content_type.into(),
        payload: payload.into(),
        ..Default::default()
    }
}

async fn create_order_schema(client: &BrokerClient) {
    client
        .create_schema(wire::CreateSchema {
            name: "order".into(),
            r#type: wire::SchemaType::Protobuf as i32,
            files: files(),
            message_type: "shop.v1.Order".into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn binary_and_json_payloads_are_checked_and_json_is_stored_as_protobuf() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    create_order_schema(&client).await;
    station_with_schema(&client, "orders", "order").await;
    let descriptor = order_descriptor();
    let order = from_json(&descriptor, ORDER_JSON);
    let binary = order.encode_to_vec();

    // A valid binary payload is stored byte for byte.
    let outcomes = client
        .produce(
            "orders",
            vec![message("application/x-protobuf", binary.clone())],
        )
        .await
        .unwrap();
    assert_eq!(stored_offset(&outcomes[0]), 0);

    // JSON (proto3 mapping) is converted and stored as protobuf.
    let outcomes = client
        .produce("orders", vec![message("application/json", ORDER_JSON)])
        .await
        .unwrap();
    assert_eq!(stored_offset(&outcomes[0]), 1);
    let stored = fetch_all(&client, "orders", 0).await;
    assert_eq!(&stored[0].payload[..], &binary[..]);
    assert_eq!(stored[1].content_type, "application/x-protobuf");
    let converted = DynamicMessage::decode(descriptor.clone(), &stored[1].payload[..]).unwrap();
    assert_eq!(converted, order, "the JSON decodes back to the same values");

    // Garbage, a truncated payload, a wrong wire type, an unknown field and
    // an undefined enum value are all refused.
    let truncated = binary[..binary.len() - 3].to_vec();
    let wrong_wire_type = vec![0x12, 0x01, 0x41]; // field 2 (an enum) as bytes
    let mut unknown_field = binary.clone();
    unknown_field.extend([0x98, 0x06, 0x01]); // field 99, varint 1
    let mut bad_enum = order.clone();
    bad_enum.set_field_by_name("status", prost_reflect::Value::EnumNumber(7));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            vec![0xff, 0xff, 0xff, 0xff, 0xff],
            "does not decode as shop.v1.Order",
        ),
        (truncated, "does not decode as shop.v1.Order"),
        (wrong_wire_type, "does not decode as shop.v1.Order"),
        (unknown_field, "unknown field number 99"),
        (
            bad_enum.encode_to_vec(),
            "'status': 7 is not a value of enum shop.v1.Status",
        ),
    ];
    for (payload, expected) in cases {
        let outcomes = client
            .produce("orders", vec![message("application/x-protobuf", payload)])
            .await
            .unwrap();
        let error = refusal(&outcomes[0]);
        assert_eq!(error.code, ErrorCode::SchemaValidationFailed as i32);
        assert!(
            error.message.contains(expected),
            "{expected} not in: {}",
            error.message
        );
    }

    // JSON that does not convert names the failing field path.
    let outcomes = client
        .produce(
            "orders",
            vec![
                message(
                    "application/json",
                    r#"{"id":"o","lines":[{"sku":"a","qty":"many"}]}"#,
                ),
                message("application/json", r#"{"id":"o","colour":"red"}"#),
                // The JSON mapping takes enum numbers, defined or not.
                message("application/json", r#"{"id":"o","status":7}"#),
                message("text/plain", "an order"),
            ],
        )
        .await
        .unwrap();
    assert!(
        refusal(&outcomes[0]).message.contains("'lines[0].qty'"),
        "{}",
        refusal(&outcomes[0]).message
    );
    assert!(refusal(&outcomes[1]).message.contains("colour"));
    assert!(
        refusal(&outcomes[2])
            .message
            .contains("'status': 7 is not a value of enum shop.v1.Status"),
        "{}",
        refusal(&outcomes[2]).message
    );
    assert!(
        refusal(&outcomes[3])
            .message
            .contains("takes application/x-protobuf or application/json")
    );

    assert_eq!(fetch_all(&client, "orders", 0).await.len(), 2);
    let letters = client.list_dead_letters("orders", 0, 0).await.unwrap();
    assert_eq!(letters.dead_letters.len(), 9);
    let garbage = client
        .dead_letter("orders", letters.dead_letters[0].id)
        .await
        .unwrap();
    assert_eq!(&garbage.payload[..], &[0xff; 5]);
    assert_eq!(garbage.content_type, "application/x-protobuf");
}

#[tokio::test]
async fn compile_errors_name_file_line_and_column() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let create = |files: Vec<wire::SchemaFile>, message_type: &str| wire::CreateSchema {
        name: "order".into(),
        r#type: wire::SchemaType::Protobuf as i32,
        files,
        message_type: message_type.into(),
    };
    let broken = ORDER_PROTO.replace("uint32 qty = 2;", "uint32 qty = 2");
    let cases = [
        (
            create(
                vec![
                    wire::SchemaFile {
                        name: "shop/order.proto".into(),
                        content: broken,
                    },
                    files().remove(1),
                ],
                "shop.v1.Order",
            ),
            "shop/order.proto:15:3: expected ';' or '['",
        ),
        (
            create(vec![files().remove(0)], "shop.v1.Order"),
            "shop/common.proto",
        ),
        (
            create(files(), "shop.v1.Invoice"),
            "not defined by the schema's files (they define: shop.v1.Line, shop.v1.Money, shop.v1.Order)",
        ),
        (create(files(), ""), "message type"),
    ];
    for (request, expected) in cases {
        let (code, message) = broker_refusal(client.create_schema(request).await);
        assert_eq!(code, ErrorCode::InvalidSchema, "{message}");
        assert!(message.contains(expected), "{expected} not in: {message}");
    }
    assert!(client.list_schemas().await.unwrap().is_empty());
}

#[tokio::test]
async fn protobuf_schemas_are_created_from_files_with_the_cli() {
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shop")).unwrap();
    std::fs::write(dir.path().join("shop/common.proto"), COMMON_PROTO).unwrap();
    std::fs::write(dir.path().join("shop/order.proto"), ORDER_PROTO).unwrap();
    // Files are named as given, relative to where the CLI runs: the
    // import "shop/common.proto" resolves.
    let out = std::process::Command::new(crate::harness::CLI_BIN)
        .current_dir(dir.path())
        .args(["schemas", "create", "order", "--type", "protobuf"])
        .args([
            "--file",
            "./shop/order.proto",
            "--file",
            "shop/common.proto",
        ])
        .args(["--message", "shop.v1.Order"])
        .env("DEPOT_BROKER", broker.addr.to_string())
        .env("DEPOT_PASSWORD", crate::harness::ROOT_PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = broker.cli(&["stations", "create", "orders"]);
    assert!(out.status.success());
    let out = broker.cli(&[
        "stations",
        "attach-schema",
        "orders",
        "order",
        "--version",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = broker.cli(&[
        "produce",
        "orders",
        "--content-type",
        "application/json",
        ORDER_JSON,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = broker.client().await;
    let stored = fetch_all(&client, "orders", 0).await;
    assert_eq!(stored[0].content_type, "application/x-protobuf");
    let info = client.describe_station("orders").await.unwrap();
    assert_eq!(
        info.schema,
        Some(wire::SchemaAttachment {
            schema: "order".into(),
            version: 1
        })
    );
}
