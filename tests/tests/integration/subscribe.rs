//! Subscriptions: pushed as messages become durable, bounded by credit.

use std::time::Duration;

use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::harness::{TestBroker, json_message};

fn subscribe(station: &str, from: u64, credit: u32) -> Op {
    Op::Subscribe(wire::Subscribe {
        station: station.into(),
        start: Some(wire::subscribe::Start::FromOffset(from)),
        initial_credit: credit,
        ..Default::default()
    })
}

#[tokio::test]
async fn a_subscriber_is_woken_by_new_messages() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    client
        .produce("live", vec![json_message("\"old\"")])
        .await
        .unwrap();
    let mut subscription = client.subscribe("live", None, 100).await.unwrap();
    assert_eq!(
        subscription.start_offset(),
        1,
        "latest skips what is stored"
    );

    let producer = broker.client().await;
    producer
        .produce("live", vec![json_message("\"new\"")])
        .await
        .unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), subscription.next_batch())
        .await
        .expect("pushed promptly")
        .unwrap()
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].offset, 1);
    assert_eq!(&batch[0].payload[..], b"\"new\"");
}

#[tokio::test]
async fn the_broker_never_pushes_beyond_the_granted_credit() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    let messages = (0..20).map(|i| json_message(&i.to_string())).collect();
    client.produce("credited", messages).await.unwrap();

    let mut raw = broker.raw_session().await;
    let ok = raw.call(50, subscribe("credited", 0, 5)).await;
    assert!(matches!(
        ok,
        Reply::SubscribeOk(wire::SubscribeOk { start_offset: 0 })
    ));
    let mut received = Vec::new();
    while received.len() < 5 {
        let response = raw.receive().await.unwrap();
        assert_eq!(response.id, 50);
        match response.result {
            Some(Reply::MessageBatch(batch)) => received.extend(batch.messages),
            other => panic!("expected messages, got {other:?}"),
        }
    }
    assert_eq!(received.len(), 5);
    assert!(
        raw.receive_within(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing beyond the credit"
    );

    raw.send(
        0,
        Op::Credit(wire::Credit {
            subscription: 50,
            messages: 100,
        }),
    )
    .await;
    while received.len() < 20 {
        match raw.receive().await.unwrap().result {
            Some(Reply::MessageBatch(batch)) => received.extend(batch.messages),
            other => panic!("expected messages, got {other:?}"),
        }
    }
    let offsets: Vec<u64> = received.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());

    let done = raw
        .call(51, Op::Unsubscribe(wire::Unsubscribe { subscription: 50 }))
        .await;
    assert!(matches!(done, Reply::Done(_)));
}

#[tokio::test]
async fn deleting_a_station_ends_its_subscriptions() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    client
        .produce("doomed", vec![json_message("1")])
        .await
        .unwrap();
    let mut raw = broker.raw_session().await;
    assert!(matches!(
        raw.call(60, subscribe("doomed", 1, 10)).await,
        Reply::SubscribeOk(_)
    ));
    client.delete_station("doomed").await.unwrap();
    let response = raw.receive().await.unwrap();
    assert_eq!(response.id, 60);
    match response.result {
        Some(Reply::Error(e)) => assert!(e.message.contains("doomed"), "{}", e.message),
        other => panic!("expected the subscription to end, got {other:?}"),
    }
}
