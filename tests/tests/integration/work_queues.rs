//! A consumer shared by several workers as a work queue: leased fetches
//! hand each worker messages no other holds, a lease that ends without an
//! acknowledgement hands its messages out again, and acknowledgements move
//! the consumer's position over what follows it without a gap, durably.

use std::time::Duration;

use depot_broker::client::BrokerClient;
use depot_schemas::wire::{self, ErrorCode};
use serde_json::{Value, json};

use crate::{
    harness::{ROOT_PASSWORD, TestBroker, broker_refusal, json_message},
    proxy_harness::{JSON, TestProxy, create_station, login, produce_single, send},
};

const LONG: Duration = Duration::from_secs(60);

fn offsets(batch: &wire::FetchResult) -> Vec<u64> {
    batch.messages.iter().map(|m| m.offset).collect()
}

fn deliveries(batch: &wire::FetchResult) -> Vec<u32> {
    batch.messages.iter().map(|m| m.deliveries).collect()
}

/// Station "jobs" with `count` messages, offsets 0 to `count - 1`.
async fn jobs_of(client: &BrokerClient, count: usize) {
    client
        .create_station("jobs", Default::default())
        .await
        .unwrap();
    produce(client, count).await;
}

async fn produce(client: &BrokerClient, count: usize) {
    let messages = (0..count).map(|n| json_message(&n.to_string())).collect();
    client.produce("jobs", messages).await.unwrap();
}

#[tokio::test]
async fn workers_share_a_consumer_and_unacknowledged_messages_come_again() {
    let broker = TestBroker::start();
    let a = broker.client().await;
    let b = BrokerClient::connect(broker.addr, "root", ROOT_PASSWORD)
        .await
        .unwrap();
    jobs_of(&a, 10).await;
    let lease = |client: &BrokerClient, max, lease| {
        let client = client.clone();
        async move {
            client
                .fetch_leased("jobs", "workers", max, lease, Duration::ZERO)
                .await
                .unwrap()
        }
    };

    // Each worker gets messages no other holds.
    let first = lease(&a, 4, Duration::from_millis(300)).await;
    assert_eq!(
        (offsets(&first), deliveries(&first)),
        (vec![0, 1, 2, 3], vec![1; 4])
    );
    let second = lease(&b, 4, LONG).await;
    assert_eq!(offsets(&second), [4, 5, 6, 7]);

    // Acknowledged past a gap: the position waits for the gap.
    let acked = a.acknowledge("jobs", "workers", vec![0, 2]).await.unwrap();
    assert_eq!(acked.next_offset, 1);

    // A's lease ends: its unacknowledged messages come again, first.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let third = lease(&a, 10, LONG).await;
    assert_eq!(offsets(&third), [1, 3, 8, 9]);
    assert_eq!(deliveries(&third), [2, 2, 1, 1]);
    assert_eq!(
        offsets(&lease(&b, 10, LONG).await),
        Vec::<u64>::new(),
        "all held"
    );

    let acked = a
        .acknowledge("jobs", "workers", vec![1, 3, 8, 9])
        .await
        .unwrap();
    assert_eq!(acked.next_offset, 4, "4 to 7 are still B's");
    let acked = b
        .acknowledge("jobs", "workers", vec![4, 5, 6, 7])
        .await
        .unwrap();
    assert_eq!((acked.next_offset, acked.lag), (10, 0));

    // A worker waiting for work gets a message as soon as it is durable.
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move {
            b.fetch_leased("jobs", "workers", 10, LONG, Duration::from_secs(20))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    produce(&a, 1).await;
    let woken = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("woken by the new message")
        .unwrap();
    assert_eq!(offsets(&woken), [10]);

    // SIGKILL: the position survives; the unacknowledged lease does not.
    let broker = broker.restart(&[]);
    let a = broker.client().await;
    let listed = a.list_consumers("jobs").await.unwrap();
    assert_eq!(listed[0].next_offset, 10);
    let again = lease(&a, 10, LONG).await;
    assert_eq!((offsets(&again), deliveries(&again)), (vec![10], vec![1]));

    // Setting the position by hand starts the workers afresh from there.
    a.commit_position("jobs", "workers", 8).await.unwrap();
    assert_eq!(offsets(&lease(&a, 10, LONG).await), [8, 9, 10]);
}

#[tokio::test]
async fn leases_are_checked() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    jobs_of(&client, 2).await;
    let without_consumer = wire::Fetch {
        station: "jobs".into(),
        lease_ms: 1000,
        ..Default::default()
    };
    let (code, message) = broker_refusal(client.fetch_with(without_consumer).await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("names the consumer"), "{message}");
    let too_long = Duration::from_secs(13 * 3600);
    let (code, _) = broker_refusal(
        client
            .fetch_leased("jobs", "workers", 1, too_long, Duration::ZERO)
            .await,
    );
    assert_eq!(code, ErrorCode::BadRequest);
    let (code, message) = broker_refusal(client.acknowledge("jobs", "workers", vec![2]).await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("next offset is 2"), "{message}");
    let (code, _) = broker_refusal(client.acknowledge("jobs", "Not/Valid", vec![0]).await);
    assert_eq!(code, ErrorCode::BadRequest);

    // The consume right, as for any fetch.
    client
        .create_user(wire::CreateUser {
            name: "reader".into(),
            password: "reader-password".into(),
            permissions: Some(wire::Permissions {
                consume: vec!["other".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let worker = BrokerClient::connect(broker.addr, "reader", "reader-password")
        .await
        .unwrap();
    let (code, _) = broker_refusal(
        worker
            .fetch_leased("jobs", "workers", 1, LONG, Duration::ZERO)
            .await,
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, _) = broker_refusal(worker.acknowledge("jobs", "workers", vec![0]).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
}

/// The same over HTTP: `GET .../messages?consumer=&lease_ms=` and `POST
/// .../consumers/{consumer}/ack`.
#[actix_rt::test]
async fn workers_share_a_consumer_over_http() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    create_station(&proxy, &root, "jobs").await;
    for n in 0..3 {
        produce_single(&proxy, &root, "jobs", &[JSON], &format!(r#"{{"n":{n}}}"#)).await;
    }
    let lease =
        |query: &str| proxy.url(&format!("/stations/jobs/messages?consumer=workers&{query}"));
    let offsets = |answer: &Value| -> Vec<u64> {
        let messages = answer["messages"].as_array().unwrap();
        messages
            .iter()
            .map(|m| m["offset"].as_u64().unwrap())
            .collect()
    };

    let first = send("GET", &lease("lease_ms=300&limit=2"), &root, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(offsets(&first.body), [0, 1]);
    assert_eq!(first.body["messages"][0]["deliveries"], 1);
    let second = send("GET", &lease("lease_ms=60000"), &root, None).await;
    assert_eq!(offsets(&second.body), [2]);

    let ack = proxy.url("/stations/jobs/consumers/workers/ack");
    let acked = send("POST", &ack, &root, Some(json!({ "offsets": [2, 0] }))).await;
    assert_eq!(acked.status, 200, "{}", acked.body);
    assert_eq!(
        acked.body["consumer"]["next_offset"], 1,
        "1 is still leased"
    );

    // The first lease ends: offset 1 comes again, its second delivery.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = send("GET", &lease("lease_ms=60000"), &root, None).await;
    assert_eq!(offsets(&again.body), [1]);
    assert_eq!(again.body["messages"][0]["deliveries"], 2);
    let acked = send("POST", &ack, &root, Some(json!({ "offsets": [1] }))).await;
    assert_eq!(acked.body["consumer"]["next_offset"], 3);
    assert_eq!(acked.body["consumer"]["lag"], 0);

    // Refusals, each in the JSON error shape.
    let beyond = send("POST", &ack, &root, Some(json!({ "offsets": [7] }))).await;
    assert_eq!(beyond.status, 400, "{}", beyond.body);
    assert_eq!(beyond.body["success"], false);
    let malformed = send("POST", &ack, &root, Some(json!({ "offset": 1 }))).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    let no_consumer = proxy.url("/stations/jobs/messages?lease_ms=1000");
    let refused = send("GET", &no_consumer, &root, None).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
}

/// The CLI as a worker: `depot fetch --consumer --lease [--commit]` and
/// `depot consumers ack`.
#[tokio::test]
async fn the_cli_leases_and_acknowledges() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    jobs_of(&client, 3).await;
    let leased = |args: &[&str]| -> Vec<Value> {
        let mut all = vec![
            "--json",
            "fetch",
            "jobs",
            "--consumer",
            "w",
            "--lease",
            "60s",
        ];
        all.extend(args);
        broker
            .cli_ok(&all)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };

    let first = leased(&["--count", "2"]);
    let offsets: Vec<&Value> = first.iter().map(|m| &m["offset"]).collect();
    assert_eq!(offsets, [0, 1]);
    assert_eq!(first[0]["deliveries"], 1);
    // Another worker gets the rest, and acknowledges it after printing.
    let second = leased(&["--commit"]);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["offset"], 2);
    assert_eq!(leased(&[]), Vec::<Value>::new(), "all leased");

    let acked = broker.cli_ok(&["--json", "consumers", "ack", "jobs", "w", "0", "1"]);
    let acked: Value = serde_json::from_str(&acked).unwrap();
    assert_eq!(acked[0]["next_offset"], 3, "{acked}");
    let without = broker.cli(&["fetch", "jobs", "--lease", "60s"]);
    assert!(!without.status.success(), "--lease needs --consumer");
}
