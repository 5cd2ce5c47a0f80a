//! Purging a station (`PurgeStation`, `DELETE /stations/{name}/messages`,
//! `depot stations purge`): the messages below the cut go, durably; the
//! station, its offsets and its consumers stay; only administrators may.

use depot_broker::client::BrokerClient;
use depot_schemas::wire::{self, ErrorCode};
use serde_json::Value;

use crate::{
    harness::{
        ROOT_PASSWORD, TestBroker, broker_refusal, fetch_all, json_message, stored_offset,
        worker_user,
    },
    proxy_harness::{TestProxy, create_station, login, produce_single, producer_user, send},
};

fn offsets(messages: &[wire::StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.offset).collect()
}

/// Station "logs" with `count` messages, offsets 0 to `count - 1`.
async fn logs_of(client: &BrokerClient, count: usize) {
    client
        .create_station("logs", Default::default())
        .await
        .unwrap();
    let messages = (0..count).map(|n| json_message(&n.to_string())).collect();
    client.produce("logs", messages).await.unwrap();
}

#[tokio::test]
async fn a_purge_removes_what_is_below_its_cut_durably_and_offsets_go_on() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    logs_of(&client, 10).await;
    client.commit_position("logs", "reader", 2).await.unwrap();

    let purged = client.purge_station("logs", Some(4)).await.unwrap();
    assert_eq!((purged.removed, purged.first_offset), (4, 4));
    assert_eq!(
        offsets(&fetch_all(&client, "logs", 0).await),
        [4, 5, 6, 7, 8, 9]
    );
    let info = client.describe_station("logs").await.unwrap();
    assert_eq!((info.message_count, info.first_offset), (6, 4));
    // A consumer behind the cut goes on at the oldest message left.
    let behind = client
        .fetch_for_consumer("logs", "reader", 10, Default::default())
        .await
        .unwrap();
    assert_eq!(behind.messages.first().map(|m| m.offset), Some(4));

    // SIGKILL right after the answer: the purge was on disk.
    let broker = broker.restart(&[]);
    let client = broker.client().await;
    assert_eq!(
        offsets(&fetch_all(&client, "logs", 0).await),
        [4, 5, 6, 7, 8, 9]
    );

    // The CLI purges the rest; the next message takes the next offset.
    let printed = broker.cli_ok(&["--json", "stations", "purge", "logs"]);
    let printed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed["removed"], 6, "{printed}");
    assert_eq!(printed["first_offset"], 10, "{printed}");
    let text = broker.cli_ok(&["stations", "purge", "logs"]);
    assert!(text.contains("purged 0 messages from logs"), "{text}");
    let outcomes = client
        .produce("logs", vec![json_message("10")])
        .await
        .unwrap();
    assert_eq!(stored_offset(&outcomes[0]), 10);
    assert_eq!(offsets(&fetch_all(&client, "logs", 0).await), [10]);
    assert_eq!(client.list_consumers("logs").await.unwrap().len(), 1);

    // A msg-id outlives its message's purge for its idempotency window.
    let with_id = || wire::NewMessage {
        msg_id: "order-1".into(),
        ..json_message("{}")
    };
    let first = client.produce("logs", vec![with_id()]).await.unwrap();
    assert_eq!(stored_offset(&first[0]), 11);
    client.purge_station("logs", None).await.unwrap();
    let again = client.produce("logs", vec![with_id()]).await.unwrap();
    assert_eq!(
        again[0].outcome,
        Some(wire::produce_outcome::Outcome::DuplicateOf(11))
    );
}

#[tokio::test]
async fn only_administrators_purge_and_depot_s_own_stations_are_refused() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    logs_of(&client, 1).await;
    let worker = worker_user(&broker, &client).await;
    let (code, _) = broker_refusal(worker.purge_station("logs", None).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, message) = broker_refusal(client.purge_station("depot.relay", None).await);
    assert_eq!(code, ErrorCode::PermissionDenied, "{message}");
    let (code, _) = broker_refusal(client.purge_station("nowhere", None).await);
    assert_eq!(code, ErrorCode::StationNotFound);
    let (code, _) = broker_refusal(client.purge_station("Not/Valid", None).await);
    assert_eq!(code, ErrorCode::InvalidStationName);
    // Nothing refused touched the messages.
    assert_eq!(offsets(&fetch_all(&client, "logs", 0).await), [0]);
    let failed = broker.cli(&[
        "--user",
        "worker",
        "--password",
        "worker-password",
        "stations",
        "purge",
        "logs",
    ]);
    assert!(!failed.status.success());
}

#[actix_rt::test]
async fn a_purge_over_http() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    create_station(&proxy, &root, "clicks").await;
    for n in 0..3 {
        let body = format!(r#"{{"n":{n}}}"#);
        produce_single(
            &proxy,
            &root,
            "clicks",
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
    }
    let purge = |query: &str| proxy.url(&format!("/stations/clicks/messages{query}"));

    let first = send("DELETE", &purge("?before=2"), &root, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["success"], true);
    assert_eq!(first.body["removed"], 2);
    assert_eq!(first.body["first_offset"], 2);
    let left = send("GET", &purge("?from=0"), &root, None).await;
    let offsets: Vec<&Value> = left.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["offset"])
        .collect();
    assert_eq!(offsets, [2]);

    let writer = producer_user(&proxy, "writer", &["*"]).await;
    let denied = send("DELETE", &purge(""), &writer, None).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["success"], false);
    let bad = send("DELETE", &purge("?before=soon"), &root, None).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let unknown = send(
        "DELETE",
        &proxy.url("/stations/nowhere/messages"),
        &root,
        None,
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    let rest = send("DELETE", &purge(""), &root, None).await;
    assert_eq!(
        (
            rest.body["removed"].as_u64(),
            rest.body["first_offset"].as_u64()
        ),
        (Some(1), Some(3))
    );
}

/// Purges racing producers: every message acknowledged at or after the
/// last purge's cut is still there, and offsets stay dense.
#[tokio::test]
async fn purges_under_load_keep_every_acknowledged_message_past_their_cut() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    logs_of(&client, 0).await;
    let producers: Vec<_> = (0..4)
        .map(|producer| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..100 {
                    let message = json_message(&format!("{producer}-{n}"));
                    let outcomes = client.produce("logs", vec![message]).await.unwrap();
                    acknowledged.push(stored_offset(&outcomes[0]));
                }
                acknowledged
            })
        })
        .collect();
    let mut last_cut = 0;
    let mut purges = 0;
    while purges < 5 || !producers.iter().all(|p| p.is_finished()) {
        let purged = client.purge_station("logs", None).await.unwrap();
        assert!(purged.first_offset >= last_cut, "a cut never moves back");
        last_cut = purged.first_offset;
        purges += 1;
    }
    let mut acknowledged = Vec::new();
    for producer in producers {
        acknowledged.extend(producer.await.unwrap());
    }
    acknowledged.sort_unstable();
    assert_eq!(
        acknowledged,
        (0..400).collect::<Vec<u64>>(),
        "dense, none lost"
    );
    let kept: Vec<u64> = acknowledged
        .into_iter()
        .filter(|&o| o >= last_cut)
        .collect();
    assert_eq!(offsets(&fetch_all(&client, "logs", 0).await), kept);

    // The station goes on: new messages after the cut, and a cut inside them.
    let more = (0..10).map(|n| json_message(&n.to_string())).collect();
    client.produce("logs", more).await.unwrap();
    let purged = client.purge_station("logs", Some(405)).await.unwrap();
    assert_eq!(purged.first_offset, 405);
    assert_eq!(
        offsets(&fetch_all(&client, "logs", 0).await),
        (405..410).collect::<Vec<u64>>()
    );
}
