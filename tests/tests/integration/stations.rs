//! Station lifecycle over the wire protocol, and recovery after a restart.

use depot_broker::client::ClientError;
use depot_schemas::wire::{CreateStation, ErrorCode, StationSettings, UpdateStation};

use crate::harness::{TestBroker, broker_refusal, fetch_all, json_message, stored_offset};

#[tokio::test]
async fn create_describe_update_list_delete() {
    let broker = TestBroker::start();
    let client = broker.client().await;

    let settings = StationSettings {
        retention_messages: Some(1000),
        idempotency_window_ms: Some(60_000),
        ..Default::default()
    };
    let created = client.create_station("orders.eu", settings).await.unwrap();
    assert_eq!(created.name, "orders.eu");
    let s = created.settings.unwrap();
    assert_eq!(s.retention_messages, Some(1000));
    assert_eq!(s.idempotency_window_ms, Some(60_000));
    assert_eq!(
        s.retention_age_ms,
        Some(7 * 24 * 3600 * 1000),
        "default age is 7 days"
    );
    assert_eq!(
        s.max_message_bytes,
        Some(1024 * 1024),
        "default max is 1 MiB"
    );

    let change = StationSettings {
        retention_bytes: Some(1 << 30),
        ..Default::default()
    };
    let updated = client.update_station("orders.eu", change).await.unwrap();
    let s = updated.settings.unwrap();
    assert_eq!(s.retention_bytes, Some(1 << 30));
    assert_eq!(s.retention_messages, Some(1000), "unchanged fields stay");

    client
        .create_station("audit", StationSettings::default())
        .await
        .unwrap();
    let names: Vec<_> = client
        .list_stations()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    // With Depot's own audit trail, made by the first change.
    assert_eq!(names, ["audit", "depot.audit", "orders.eu"]);

    client.delete_station("audit").await.unwrap();
    let (code, message) = broker_refusal(client.describe_station("audit").await);
    assert_eq!(code, ErrorCode::StationNotFound);
    assert!(message.contains("audit"), "{message}");
}

#[tokio::test]
async fn invalid_and_duplicate_names_are_refused_clearly() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    for bad in ["Orders", "-x", "a/b", "", &"x".repeat(129)] {
        let (code, message) =
            broker_refusal(client.create_station(bad, StationSettings::default()).await);
        assert_eq!(code, ErrorCode::InvalidStationName, "{bad:?}");
        assert!(
            message.contains("^[a-z0-9][a-z0-9._-]{0,127}$"),
            "{message}"
        );
    }
    client
        .create_station("once", StationSettings::default())
        .await
        .unwrap();
    let (code, _) = broker_refusal(
        client
            .create_station("once", StationSettings::default())
            .await,
    );
    assert_eq!(code, ErrorCode::StationExists);
}

#[tokio::test]
async fn stations_beyond_the_limit_are_refused_until_one_is_deleted() {
    let data = std::sync::Arc::new(tempfile::TempDir::new().unwrap());
    let broker = TestBroker::start_with(data, &["--max-stations", "2"]);
    let client = broker.client().await;
    client
        .create_station("one", Default::default())
        .await
        .unwrap();
    client
        .produce("two", vec![json_message("2")])
        .await
        .unwrap();

    let refused = |result: Result<(), ClientError>| {
        let (code, message) = broker_refusal(result);
        assert_eq!(code, ErrorCode::LimitExceeded);
        assert!(message.contains("--max-stations"), "{message}");
    };
    refused(
        client
            .create_station("three", Default::default())
            .await
            .map(drop),
    );
    refused(
        client
            .produce("three", vec![json_message("3")])
            .await
            .map(drop),
    );
    // Existing stations take messages as before.
    client
        .produce("one", vec![json_message("1")])
        .await
        .unwrap();

    client.delete_station("one").await.unwrap();
    client
        .create_station("three", Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deleted_station_can_be_recreated_empty() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    client
        .produce("recycled", vec![json_message("1"), json_message("2")])
        .await
        .unwrap();
    client.delete_station("recycled").await.unwrap();
    let outcomes = client
        .produce("recycled", vec![json_message("3")])
        .await
        .unwrap();
    assert_eq!(
        stored_offset(&outcomes[0]),
        0,
        "a new station starts at offset 0"
    );
    let messages = fetch_all(&client, "recycled", 0).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(&messages[0].payload[..], b"3");
}

#[tokio::test]
async fn restart_brings_back_every_station_and_message_exactly() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let settings = StationSettings {
        retention_messages: Some(500),
        ..Default::default()
    };
    client.create_station("kept", settings).await.unwrap();
    let messages: Vec<_> = (0..300)
        .map(|i| json_message(&format!("{{\"n\":{i}}}")))
        .collect();
    client.produce("kept", messages).await.unwrap();
    let mut with_headers = json_message("{\"h\":true}");
    with_headers.headers = vec![depot_schemas::wire::Header {
        key: "trace".into(),
        value: "abc".into(),
    }];
    with_headers.msg_id = "order-1".into();
    client.produce("kept", vec![with_headers]).await.unwrap();
    let before = fetch_all(&client, "kept", 0).await;
    let info_before = client.describe_station("kept").await.unwrap();
    drop(client);

    let broker = broker.restart(&[]);
    let client = broker.client().await;
    let after = fetch_all(&client, "kept", 0).await;
    assert_eq!(before, after, "every message comes back byte for byte");
    let info_after = client.describe_station("kept").await.unwrap();
    assert_eq!(info_before, info_after, "settings and counters come back");

    // The dedup index survives too.
    let mut again = json_message("{\"h\":true}");
    again.msg_id = "order-1".into();
    let outcome = client.produce("kept", vec![again]).await.unwrap();
    assert_eq!(
        outcome[0].outcome,
        Some(depot_schemas::wire::produce_outcome::Outcome::DuplicateOf(
            300
        ))
    );
    let next = client
        .produce("kept", vec![json_message("{}")])
        .await
        .unwrap();
    assert_eq!(stored_offset(&next[0]), 301);
}

#[tokio::test]
async fn a_description_is_kept_changed_and_recovered() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let created = client
        .create_station_with(CreateStation {
            name: "topic".into(),
            description: "Orders from the shop".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.description, "Orders from the shop");
    assert_eq!(created.updated_at_ms, created.created_at_ms);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let renamed = client
        .update_station_with(UpdateStation {
            name: "topic".into(),
            description: Some("Paid orders".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(renamed.description, "Paid orders");
    assert!(renamed.updated_at_ms > created.created_at_ms);
    let settings_only = StationSettings {
        retention_messages: Some(10),
        ..Default::default()
    };
    let changed = client.update_station("topic", settings_only).await.unwrap();
    assert_eq!(changed.description, "Paid orders", "kept when not given");

    let too_long = "x".repeat(1001);
    let (code, message) = broker_refusal(
        client
            .update_station_with(UpdateStation {
                name: "topic".into(),
                description: Some(too_long),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("1000 characters"), "{message}");

    let before = client.describe_station("topic").await.unwrap();
    drop(client);
    let broker = broker.restart(&[]);
    let client = broker.client().await;
    assert_eq!(client.describe_station("topic").await.unwrap(), before);
    let cleared = client
        .update_station_with(UpdateStation {
            name: "topic".into(),
            description: Some(String::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cleared.description, "");
}
