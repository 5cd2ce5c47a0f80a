//! Retention removes the oldest messages in the background; offsets are never
//! reused.

use std::time::Duration;

use depot_broker::client::BrokerClient;
use depot_schemas::wire::StationSettings;

use crate::harness::{PATIENCE, TestBroker, fetch_all, json_message, stored_offset};

/// Waits until the station's first offset reaches `first` (retention runs
/// every 200 ms in tests).
async fn wait_for_first_offset(client: &BrokerClient, station: &str, first: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let info = client.describe_station(station).await.unwrap();
        if info.first_offset == first {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention did not run: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn retention_by_count_keeps_exactly_the_newest() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let settings = StationSettings {
        retention_messages: Some(10),
        ..Default::default()
    };
    client.create_station("counted", settings).await.unwrap();
    // One request, so all 25 share a record and retention must split it.
    let messages = (0..25).map(|i| json_message(&i.to_string())).collect();
    client.produce("counted", messages).await.unwrap();
    wait_for_first_offset(&client, "counted", 15).await;
    let left = fetch_all(&client, "counted", 0).await;
    assert_eq!(
        left.iter().map(|m| m.offset).collect::<Vec<_>>(),
        (15..25).collect::<Vec<_>>()
    );
    assert_eq!(&left[0].payload[..], b"15");
    let info = client.describe_station("counted").await.unwrap();
    assert_eq!((info.message_count, info.bytes), (10, 10 * 2));
}

#[tokio::test]
async fn retention_by_bytes_and_age() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let by_bytes = StationSettings {
        retention_bytes: Some(100),
        ..Default::default()
    };
    client.create_station("sized", by_bytes).await.unwrap();
    for _ in 0..5 {
        client
            .produce(
                "sized",
                vec![json_message(&format!("\"{}\"", "x".repeat(48)))],
            )
            .await
            .unwrap();
    }
    wait_for_first_offset(&client, "sized", 3).await;
    assert_eq!(client.describe_station("sized").await.unwrap().bytes, 100);

    let by_age = StationSettings {
        retention_age_ms: Some(300),
        ..Default::default()
    };
    client.create_station("aged", by_age).await.unwrap();
    client
        .produce("aged", vec![json_message("1"), json_message("2")])
        .await
        .unwrap();
    wait_for_first_offset(&client, "aged", 2).await;
    assert!(fetch_all(&client, "aged", 0).await.is_empty());

    // Emptied by retention, restarted: offsets continue, never reused.
    drop(client);
    let broker = broker.restart(&[]);
    let client = broker.client().await;
    let outcome = client
        .produce("aged", vec![json_message("3")])
        .await
        .unwrap();
    assert_eq!(stored_offset(&outcome[0]), 2);
}
