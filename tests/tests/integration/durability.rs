//! The relaxed fsync modes still store and serve messages, and survive a
//! clean restart.

use std::sync::Arc;

use crate::harness::{TestBroker, fetch_all, json_message, stored_offset};

async fn produce_restart_fetch(fsync: &str) {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let broker = TestBroker::start_with(data.clone(), &["--fsync", fsync]);
    let client = broker.client().await;
    let messages = (0..100).map(|i| json_message(&i.to_string())).collect();
    let outcomes = client.produce("relaxed", messages).await.unwrap();
    assert_eq!(stored_offset(&outcomes[99]), 99);
    assert_eq!(
        fetch_all(&client, "relaxed", 0).await.len(),
        100,
        "{fsync}: readable at once"
    );
    drop(client);
    let broker = broker.restart(&["--fsync", fsync]);
    let client = broker.client().await;
    let stored = fetch_all(&client, "relaxed", 0).await;
    // The harness stops the broker with SIGKILL, which a relaxed mode may
    // survive only partly; what is there must be a dense prefix.
    let offsets: Vec<u64> = stored.iter().map(|m| m.offset).collect();
    assert_eq!(
        offsets,
        (0..stored.len() as u64).collect::<Vec<_>>(),
        "{fsync}"
    );
    let next = client
        .produce("relaxed", vec![json_message("{}")])
        .await
        .unwrap();
    assert_eq!(stored_offset(&next[0]), stored.len() as u64, "{fsync}");
}

#[tokio::test]
async fn interval_fsync_serves_and_recovers() {
    produce_restart_fetch("interval:20").await;
}

#[tokio::test]
async fn never_fsync_serves_and_recovers() {
    produce_restart_fetch("never").await;
}

#[tokio::test]
async fn an_unknown_fsync_mode_is_refused_at_start() {
    let output = std::process::Command::new(crate::harness::BROKER_BIN)
        .args(["--fsync", "sometimes", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("always, interval:<milliseconds>, never"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_clean_shutdown_flushes_even_without_fsync() {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let mut broker = TestBroker::start_with(data.clone(), &["--fsync", "never"]);
    let client = broker.client().await;
    let messages = (0..500).map(|i| json_message(&i.to_string())).collect();
    client.produce("graceful", messages).await.unwrap();
    drop(client);
    assert!(broker.terminate(), "SIGTERM is a clean exit");

    let broker = TestBroker::start_with(data, &["--fsync", "never"]);
    let client = broker.client().await;
    assert_eq!(fetch_all(&client, "graceful", 0).await.len(), 500);
}

/// Two processes on one data directory would corrupt it: sled locks the
/// directory, and the second broker says so, exits non-zero, and leaves
/// the first serving.
#[tokio::test]
async fn a_second_broker_on_the_same_data_directory_is_refused() {
    let broker = TestBroker::start();
    let output = std::process::Command::new(crate::harness::BROKER_BIN)
        .arg("--data")
        .arg(broker.data.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("DEPOT_ROOT_PASSWORD", crate::harness::ROOT_PASSWORD)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is in use by another process"), "{stderr}");
    let client = broker.client().await;
    client
        .create_station("still-here", Default::default())
        .await
        .unwrap();
}
