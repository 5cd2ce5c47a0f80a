//! Producing: offsets, idempotency, limits, auto-create.

use std::{sync::Arc, time::Duration};

use depot_schemas::wire::{ErrorCode, StationSettings, produce_outcome::Outcome};

use crate::harness::{TestBroker, broker_refusal, fetch_all, json_message, stored_offset};

#[tokio::test]
async fn concurrent_producers_get_dense_unique_offsets() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let producers = 16;
    let per_producer = 50;
    let mut tasks = Vec::new();
    for p in 0..producers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..per_producer {
                let body = format!("{{\"p\":{p},\"i\":{i}}}");
                let outcomes = client
                    .produce("dense", vec![json_message(&body)])
                    .await
                    .unwrap();
                offsets.push((stored_offset(&outcomes[0]), body));
            }
            offsets
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    acknowledged.sort();
    let offsets: Vec<u64> = acknowledged.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (0..(producers * per_producer) as u64).collect::<Vec<_>>()
    );

    let stored = fetch_all(&client, "dense", 0).await;
    for (message, (offset, body)) in stored.iter().zip(&acknowledged) {
        assert_eq!(message.offset, *offset);
        assert_eq!(&message.payload[..], body.as_bytes());
        assert_eq!(message.producer, "root");
        assert!(
            uuid_v7(&message.id),
            "assigned ids are UUID v7: {}",
            message.id
        );
    }
}

fn uuid_v7(id: &str) -> bool {
    id.len() == 36 && id.as_bytes()[14] == b'7'
}

#[tokio::test]
async fn a_repeated_msg_id_is_a_duplicate_not_an_error() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let mut first = json_message("{\"v\":1}");
    first.msg_id = "payment-42".into();
    let mut same_batch = json_message("{\"v\":2}");
    same_batch.msg_id = "payment-42".into();
    let outcomes = client
        .produce(
            "payments",
            vec![json_message("{}"), first.clone(), same_batch],
        )
        .await
        .unwrap();
    assert_eq!(outcomes[1].outcome, Some(Outcome::Offset(1)));
    assert_eq!(
        outcomes[2].outcome,
        Some(Outcome::DuplicateOf(1)),
        "inside one batch"
    );

    let later = client.produce("payments", vec![first]).await.unwrap();
    assert_eq!(
        later[0].outcome,
        Some(Outcome::DuplicateOf(1)),
        "in a later request"
    );
    let stored = fetch_all(&client, "payments", 0).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].id, "payment-42", "the msg-id is the message id");
}

#[tokio::test]
async fn after_the_idempotency_window_a_msg_id_is_stored_again() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let settings = StationSettings {
        idempotency_window_ms: Some(300),
        ..Default::default()
    };
    client
        .create_station("short-window", settings)
        .await
        .unwrap();
    let mut message = json_message("{}");
    message.msg_id = "m".into();
    let first = client
        .produce("short-window", vec![message.clone()])
        .await
        .unwrap();
    assert_eq!(first[0].outcome, Some(Outcome::Offset(0)));
    // Let the window pass (a property of time, not a wait for readiness).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = client.produce("short-window", vec![message]).await.unwrap();
    assert_eq!(second[0].outcome, Some(Outcome::Offset(1)));
}

#[tokio::test]
async fn an_oversize_message_is_refused_alone() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let settings = StationSettings {
        max_message_bytes: Some(10),
        ..Default::default()
    };
    client.create_station("small", settings).await.unwrap();
    let outcomes = client
        .produce(
            "small",
            vec![
                json_message("1"),
                json_message("\"far too long\""),
                json_message("2"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcomes[0].outcome, Some(Outcome::Offset(0)));
    match &outcomes[1].outcome {
        Some(Outcome::Error(e)) => {
            assert_eq!(e.code, ErrorCode::MessageTooLarge as i32);
            assert!(
                e.message
                    .contains("14 bytes exceeds the station's limit of 10"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        outcomes[2].outcome,
        Some(Outcome::Offset(1)),
        "offsets stay dense"
    );
}

#[tokio::test]
async fn unknown_stations_are_not_created_when_auto_create_is_off() {
    let broker = TestBroker::start_with(
        Arc::new(tempfile::TempDir::new().unwrap()),
        &["--auto-create", "false"],
    );
    let client = broker.client().await;
    let (code, message) = broker_refusal(client.produce("nowhere", vec![json_message("{}")]).await);
    assert_eq!(code, ErrorCode::StationNotFound);
    assert_eq!(message, "station not found: nowhere");
    client
        .create_station("somewhere", StationSettings::default())
        .await
        .unwrap();
    client
        .produce("somewhere", vec![json_message("{}")])
        .await
        .unwrap();
}

#[tokio::test]
async fn fetch_respects_offsets_and_limits() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let messages = (0..50).map(|i| json_message(&i.to_string())).collect();
    client.produce("paged", messages).await.unwrap();
    let page = client.fetch("paged", 10, 5).await.unwrap();
    let offsets: Vec<u64> = page.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [10, 11, 12, 13, 14]);
    assert_eq!(page.next_offset, 15);
    assert_eq!(page.head_offset, 50);
    let end = client.fetch("paged", 50, 5).await.unwrap();
    assert!(end.messages.is_empty());
    assert_eq!(end.next_offset, 50);
}

#[tokio::test]
async fn fetch_stops_at_the_byte_limit_but_returns_at_least_one_message() {
    use depot_schemas::wire::{Fetch, request::Op, response::Result as Reply};

    let broker = TestBroker::start();
    let client = broker.client().await;
    let big = format!("\"{}\"", "x".repeat(998));
    let messages = (0..10).map(|_| json_message(&big)).collect();
    client.produce("weighty", messages).await.unwrap();
    let mut raw = broker.raw_session().await;
    let fetch = |max_bytes| {
        Op::Fetch(Fetch {
            station: "weighty".into(),
            from_offset: 0,
            max_messages: 100,
            max_bytes,
            ..Default::default()
        })
    };
    match raw.call(3, fetch(3500)).await {
        Reply::FetchResult(result) => {
            assert_eq!(result.messages.len(), 3, "3 x 1000 bytes fit in 3500");
            assert_eq!(result.next_offset, 3);
        }
        other => panic!("{other:?}"),
    }
    match raw.call(4, fetch(10)).await {
        Reply::FetchResult(result) => assert_eq!(result.messages.len(), 1),
        other => panic!("{other:?}"),
    }
}

/// A broker with frames above the default 16 MiB: the client learns the
/// limit from `HelloOk`, sends a message larger than the default and reads
/// it back (its reader started at the default). Over the limit, a produce
/// is split, and a message no frame carries is refused alone.
#[tokio::test]
async fn clients_follow_the_brokers_frame_limit_both_ways() {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let broker = TestBroker::start_with(data, &["--max-frame", "24MiB"]);
    let client = broker.client().await;
    let settings = StationSettings {
        max_message_bytes: Some(20 << 20),
        ..Default::default()
    };
    client.create_station("large", settings).await.unwrap();
    // A station may not take messages no frame could deliver back.
    let undeliverable = StationSettings {
        max_message_bytes: Some(30 << 20),
        ..Default::default()
    };
    for refused in [
        client
            .create_station("larger", undeliverable)
            .await
            .map(drop),
        client
            .update_station("large", undeliverable)
            .await
            .map(drop),
    ] {
        let (code, message) = broker_refusal(refused);
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(message.contains("raise --max-frame"), "{message}");
    }
    let large = json_message(&format!("\"{}\"", "z".repeat(17 << 20)));
    let outcomes = client.produce("large", vec![large.clone()]).await.unwrap();
    assert_eq!(stored_offset(&outcomes[0]), 0);
    let fetched = client.fetch("large", 0, 1).await.expect("a 17 MiB answer");
    assert_eq!(fetched.messages[0].payload, large.payload);

    // Two such messages do not fit one 24 MiB frame: two requests, in order.
    let outcomes = client
        .produce("large", vec![large.clone(), large.clone()])
        .await
        .unwrap();
    let offsets: Vec<u64> = outcomes.iter().map(stored_offset).collect();
    assert_eq!(offsets, [1, 2]);
    let too_large = json_message(&format!("\"{}\"", "z".repeat(25 << 20)));
    let outcomes = client
        .produce("large", vec![too_large, json_message("2")])
        .await
        .unwrap();
    match &outcomes[0].outcome {
        Some(Outcome::Error(error)) => {
            assert_eq!(error.code, ErrorCode::MessageTooLarge as i32);
            assert!(error.message.contains("--max-frame"), "{}", error.message);
        }
        other => panic!("refused in its place: {other:?}"),
    }
    assert_eq!(stored_offset(&outcomes[1]), 3);
    assert!(!client.is_closed(), "the connection survived");
}
