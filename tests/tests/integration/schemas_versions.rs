//! Schema versions: updates under load, rollback, pinning, and restarts.

use std::sync::Arc;

use depot_schemas::wire;
use tempfile::TempDir;

use crate::{
    harness::{TestBroker, fetch_all, json_message, stored_offset},
    schemas_json::{create_json_schema, refusal, station_with_schema},
};

const V1: &str = r#"{"type":"object","required":["a"]}"#;
const V2: &str = r#"{"type":"object","required":["a","b"],"properties":{"b":{"type":"integer"}}}"#;

#[tokio::test]
async fn versions_change_under_running_producers_and_survive_a_restart() {
    let data = Arc::new(TempDir::new().unwrap());
    let broker = TestBroker::start_with(data.clone(), &[]);
    let client = broker.client().await;
    create_json_schema(&client, "event", V1).await;
    station_with_schema(&client, "events", "event").await;

    // Producers keep sending messages valid under both versions while the
    // schema changes under them: none is refused, none is lost.
    let producers = 4;
    let per_producer = 200;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_producer {
                let body = format!(r#"{{"a":{p},"b":{i}}}"#);
                let outcomes = client
                    .produce("events", vec![json_message(&body)])
                    .await
                    .unwrap();
                stored_offset(&outcomes[0]);
            }
        }));
    }
    tokio::task::yield_now().await;
    let updated = client
        .update_schema(wire::UpdateSchema {
            name: "event".into(),
            files: vec![wire::SchemaFile {
                name: "event.json".into(),
                content: V2.into(),
            }],
            message_type: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(updated.active_version, 2);
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = producers * per_producer;
    assert_eq!(fetch_all(&client, "events", 0).await.len(), acknowledged);

    // Version 2 is in force; rollback brings version 1 back.
    let outcomes = client
        .produce("events", vec![json_message(r#"{"a":1}"#)])
        .await
        .unwrap();
    assert!(
        refusal(&outcomes[0])
            .message
            .contains("\"b\" is a required property")
    );
    client.rollback_schema("event", 1).await.unwrap();
    let outcomes = client
        .produce("events", vec![json_message(r#"{"a":1}"#)])
        .await
        .unwrap();
    stored_offset(&outcomes[0]);

    // A pinned version wins over the active one.
    client.attach_schema("events", "event", 2).await.unwrap();
    let outcomes = client
        .produce("events", vec![json_message(r#"{"a":2}"#)])
        .await
        .unwrap();
    refusal(&outcomes[0]);
    let letters = client
        .list_dead_letters("events", 0, 0)
        .await
        .unwrap()
        .dead_letters;
    assert_eq!(
        letters.iter().map(|l| l.schema_version).collect::<Vec<_>>(),
        vec![2, 2]
    );

    // A restart keeps schemas, versions, the active one, attachments and
    // dead letters.
    drop(client);
    let broker = broker.restart(&[]);
    let client = broker.client().await;
    let schema = client.describe_schema("event").await.unwrap();
    assert_eq!(schema.active_version, 1);
    assert_eq!(schema.versions.len(), 2);
    assert_eq!(schema.versions[1].files[0].content, V2);
    assert_eq!(schema.stations, vec!["events".to_owned()]);
    let station = client.describe_station("events").await.unwrap();
    assert_eq!(
        station.schema,
        Some(wire::SchemaAttachment {
            schema: "event".into(),
            version: 2
        })
    );
    let outcomes = client
        .produce("events", vec![json_message(r#"{"a":3}"#)])
        .await
        .unwrap();
    refusal(&outcomes[0]);
    assert_eq!(
        client
            .list_dead_letters("events", 0, 0)
            .await
            .unwrap()
            .dead_letters
            .len(),
        3
    );
    // Every message produced before any of this is still there and readable.
    assert_eq!(
        fetch_all(&client, "events", 0).await.len(),
        acknowledged + 1
    );

    // Detached, anything goes again.
    client.detach_schema("events").await.unwrap();
    let outcomes = client
        .produce("events", vec![json_message("[]")])
        .await
        .unwrap();
    stored_offset(&outcomes[0]);
}

#[tokio::test]
async fn a_station_can_drop_refused_messages_and_dead_letters_expire() {
    // The harness runs retention every 200 ms.
    let broker = TestBroker::start();
    let client = broker.client().await;
    create_json_schema(&client, "event", V1).await;
    station_with_schema(&client, "drops", "event").await;
    station_with_schema(&client, "expires", "event").await;
    let drop_them = wire::StationSettings {
        keep_dead_letters: Some(false),
        ..Default::default()
    };
    let info = client.update_station("drops", drop_them).await.unwrap();
    assert_eq!(info.settings.unwrap().keep_dead_letters, Some(false));
    let expire_fast = wire::StationSettings {
        dead_letter_retention_ms: Some(300),
        ..Default::default()
    };
    client.update_station("expires", expire_fast).await.unwrap();

    for station in ["drops", "expires"] {
        let outcomes = client
            .produce(station, vec![json_message("{}")])
            .await
            .unwrap();
        refusal(&outcomes[0]);
    }
    assert!(
        client
            .list_dead_letters("drops", 0, 0)
            .await
            .unwrap()
            .dead_letters
            .is_empty()
    );
    assert_eq!(
        client
            .list_dead_letters("expires", 0, 0)
            .await
            .unwrap()
            .dead_letters
            .len(),
        1
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !client
        .list_dead_letters("expires", 0, 0)
        .await
        .unwrap()
        .dead_letters
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "dead letters were never trimmed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
