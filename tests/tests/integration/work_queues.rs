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
    proxy_harness::{JSON, TestProxy, create_station, login, metric_value, produce_single, send},
};

const LONG: Duration = Duration::from_secs(60);

fn offsets(batch: &wire::FetchResult) -> Vec<u64> {
    batch.messages.iter().map(|m| m.offset).collect()
}

fn deliveries(batch: &wire::FetchResult) -> Vec<u32> {
    batch.messages.iter().map(|m| m.deliveries).collect()
}

/// A worker of "workers" waiting up to 20 s for work.
fn waiting_worker(client: &BrokerClient) -> tokio::task::JoinHandle<wire::FetchResult> {
    let client = client.clone();
    tokio::spawn(async move {
        client
            .fetch_leased("jobs", "workers", 10, LONG, Duration::from_secs(20))
            .await
            .unwrap()
    })
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
    let waiting = waiting_worker(&b);
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

/// Acknowledgements beyond a gap are durable: a restart hands out only
/// what nobody acknowledged; setting the position by hand forgets them; a
/// consumer keeps at most 100,000 of them.
#[tokio::test]
async fn acknowledgements_beyond_a_gap_survive_a_restart() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    jobs_of(&client, 4).await;
    let all = client
        .fetch_leased("jobs", "workers", 10, LONG, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(offsets(&all), [0, 1, 2, 3]);
    let acked = client
        .acknowledge("jobs", "workers", vec![1, 2])
        .await
        .unwrap();
    assert_eq!(acked.next_offset, 0, "0 is still leased");
    let workers = &client.list_consumers("jobs").await.unwrap()[0];
    assert_eq!(
        (
            workers.consumer.as_str(),
            workers.leased,
            workers.acknowledged_ahead
        ),
        ("workers", 2, 2),
        "a work queue whose position never moved is listed"
    );

    let broker = broker.restart(&[]);
    let client = broker.client().await;
    let again = client
        .fetch_leased("jobs", "workers", 10, LONG, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(offsets(&again), [0, 3], "1 and 2 were acknowledged");
    let acked = client
        .acknowledge("jobs", "workers", vec![0])
        .await
        .unwrap();
    assert_eq!(acked.next_offset, 3, "over 0 and the 1 and 2 kept");

    // By hand, back to 0: the workers start afresh, everything comes again.
    client
        .acknowledge("jobs", "workers", vec![3])
        .await
        .unwrap();
    client.commit_position("jobs", "workers", 0).await.unwrap();
    let afresh = client
        .fetch_leased("jobs", "workers", 10, LONG, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(offsets(&afresh), [0, 1, 2, 3]);

    // Behind a message never acknowledged, at most 100,000 are kept.
    client.commit_position("jobs", "workers", 0).await.unwrap();
    for _ in 0..100 {
        produce_batch(&client, 1000).await;
    }
    let beyond: Vec<u64> = (1..=100_000).collect();
    for chunk in beyond.chunks(10_000) {
        client
            .acknowledge("jobs", "workers", chunk.to_vec())
            .await
            .unwrap();
    }
    let (code, message) =
        broker_refusal(client.acknowledge("jobs", "workers", vec![100_001]).await);
    assert_eq!(code, ErrorCode::LimitExceeded);
    assert!(message.contains("max_deliveries"), "{message}");
    let acked = client
        .acknowledge("jobs", "workers", vec![0])
        .await
        .unwrap();
    assert_eq!(acked.next_offset, 100_001, "the gap closed");
}

async fn produce_batch(client: &BrokerClient, count: usize) {
    let messages = (0..count).map(|_| json_message("{}")).collect();
    client.produce("jobs", messages).await.unwrap();
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

/// Leases over HTTP: `POST .../consumers/{consumer}/leases` gives a
/// message back or extends it, `&max_deliveries=` on the fetch makes a
/// poison message a dead letter of the consumer.
#[actix_rt::test]
async fn leases_change_and_poison_messages_leave_over_http() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    create_station(&proxy, &root, "jobs").await;
    for n in 0..2 {
        produce_single(&proxy, &root, "jobs", &[JSON], &format!(r#"{{"n":{n}}}"#)).await;
    }
    let lease = proxy
        .url("/stations/jobs/messages?consumer=workers&lease_ms=60000&limit=1&max_deliveries=1");
    let change = proxy.url("/stations/jobs/consumers/workers/leases");
    let first = send("GET", &lease, &root, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["messages"][0]["offset"], 0);

    let back = json!({ "leases": [{ "offset": 0, "deliveries": 1 }], "lease_ms": 0 });
    let given = send("POST", &change, &root, Some(back)).await;
    assert_eq!(given.status, 200, "{}", given.body);
    assert_eq!(given.body["changed"], json!([0]));
    assert_eq!(given.body["lost"], json!([]));

    // Handed out once, its limit: a dead letter now; the worker gets 1.
    let next = send("GET", &lease, &root, None).await;
    assert_eq!(next.body["messages"][0]["offset"], 1, "{}", next.body);
    let letters = send(
        "GET",
        &proxy.url("/stations/jobs/dead-letters"),
        &root,
        None,
    )
    .await;
    let letter = &letters.body["dead_letters"][0];
    assert_eq!(
        (
            &letter["consumer"],
            &letter["offset"],
            &letter["deliveries"]
        ),
        (&json!("workers"), &json!(0), &json!(1)),
        "{}",
        letters.body
    );
    let extend = json!({ "leases": [{ "offset": 0 }, { "offset": 1 }], "lease_ms": 1000 });
    let extended = send("POST", &change, &root, Some(extend)).await;
    assert_eq!(extended.body["changed"], json!([1]), "{}", extended.body);
    assert_eq!(extended.body["lost"], json!([0]));

    // Refusals, each in the JSON error shape.
    let too_long = json!({ "leases": [], "lease_ms": 50_000_000 });
    let refused = send("POST", &change, &root, Some(too_long)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["success"], false);
    let malformed = send("POST", &change, &root, Some(json!({ "offsets": [1] }))).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    let unleased = proxy.url("/stations/jobs/messages?consumer=workers&max_deliveries=2");
    let refused = send("GET", &unleased, &root, None).await;
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

    // A worker gives a message back, another extends one; a lease lost is
    // an error.
    produce(&client, 2).await;
    let third = leased(&["--max-deliveries", "5"]);
    let offsets: Vec<&Value> = third.iter().map(|m| &m["offset"]).collect();
    assert_eq!(offsets, [3, 4]);
    let released = broker.cli_ok(&["consumers", "release", "jobs", "w", "3:1"]);
    assert!(
        released.contains("released the leases of offsets 3"),
        "{released}"
    );
    let again = leased(&[]);
    assert_eq!(
        (&again[0]["offset"], &again[0]["deliveries"]),
        (&json!(3), &json!(2))
    );
    let extended = broker.cli_ok(&[
        "--json",
        "consumers",
        "extend",
        "jobs",
        "w",
        "4",
        "--lease",
        "10m",
    ]);
    let extended: Value = serde_json::from_str(&extended).unwrap();
    assert_eq!(extended, json!({ "changed": [4], "lost": [] }));
    let lost = broker.cli(&["consumers", "extend", "jobs", "w", "3:1", "--lease", "1m"]);
    assert!(!lost.status.success(), "3 was handed out again since");
    let stderr = String::from_utf8_lossy(&lost.stderr);
    assert!(stderr.contains("not leased to you"), "{stderr}");
    let bad = broker.cli(&["consumers", "release", "jobs", "w", "3:x"]);
    assert!(!bad.status.success());

    // The listing shows the work queue's figures.
    let listed = broker.cli_ok(&["consumers", "list", "jobs"]);
    assert!(listed.contains("redelivered"), "{listed}");
    let listed = broker.cli_ok(&["--json", "consumers", "list", "jobs"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        (&listed[0]["leased"], &listed[0]["redeliveries"]),
        (&json!(2), &json!(1)),
        "{listed}"
    );
}

fn lease_of(offset: u64, deliveries: u32) -> wire::LeaseRef {
    wire::LeaseRef { offset, deliveries }
}

/// A worker extends the lease of a message it is still busy with, gives
/// back one it cannot handle (a worker waiting for work gets it at once),
/// and changes only its own leases.
#[tokio::test]
async fn a_worker_extends_and_gives_back_its_leases() {
    let broker = TestBroker::start();
    let a = broker.client().await;
    let b = BrokerClient::connect(broker.addr, "root", ROOT_PASSWORD)
        .await
        .unwrap();
    jobs_of(&a, 3).await;
    let short = Duration::from_secs(1);
    let first = a
        .fetch_leased("jobs", "workers", 3, short, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(offsets(&first), [0, 1, 2]);

    // B waits for work; A gives offset 1 back: B gets it at once, long
    // before A's lease would have ended.
    let waiting = waiting_worker(&b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let extended = a
        .change_leases("jobs", "workers", vec![lease_of(0, 1)], LONG)
        .await
        .unwrap();
    assert_eq!((extended.changed, extended.lost), (vec![0], vec![]));
    let released = a
        .change_leases("jobs", "workers", vec![lease_of(1, 1)], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(released.changed, [1]);
    let woken = tokio::time::timeout(Duration::from_millis(500), waiting)
        .await
        .expect("woken by the lease given back, not by its end")
        .unwrap();
    assert_eq!((offsets(&woken), deliveries(&woken)), (vec![1], vec![2]));

    // A's short lease of 2 ends; the extended one of 0 does not.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let again = b
        .fetch_leased("jobs", "workers", 10, LONG, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((offsets(&again), deliveries(&again)), (vec![2], vec![2]));

    // A's lease of 1 and 2 is lost to B (their deliveries moved on), and
    // an acknowledged message is nobody's lease.
    a.acknowledge("jobs", "workers", vec![0]).await.unwrap();
    let stale = vec![lease_of(0, 1), lease_of(1, 1), lease_of(2, 1)];
    let lost = a
        .change_leases("jobs", "workers", stale, LONG)
        .await
        .unwrap();
    assert_eq!((lost.changed, lost.lost), (vec![], vec![0, 1, 2]));
    assert_eq!(
        offsets(
            &a.fetch_leased("jobs", "workers", 10, LONG, Duration::ZERO)
                .await
                .unwrap()
        ),
        Vec::<u64>::new(),
        "B still holds 1 and 2"
    );
    // Without deliveries, whichever lease holds the message changes: a
    // delay before the retry.
    let delayed = b
        .change_leases(
            "jobs",
            "workers",
            vec![lease_of(2, 0)],
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert_eq!(delayed.changed, [2]);
    let retried = a
        .fetch_leased("jobs", "workers", 10, LONG, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (offsets(&retried), deliveries(&retried)),
        (vec![2], vec![3])
    );

    let (code, _) = broker_refusal(
        a.change_leases("jobs", "workers", vec![], Duration::from_secs(13 * 3600))
            .await,
    );
    assert_eq!(code, ErrorCode::BadRequest);
}

/// A message handed out `max_deliveries` times without an acknowledgement
/// becomes a dead letter of its consumer: the consumer goes on past it,
/// every other reader still has it, and a resend appends it again.
#[tokio::test]
async fn a_poison_message_becomes_a_dead_letter_of_its_consumer() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    jobs_of(&client, 3).await;
    let lease_one = |client: &BrokerClient| {
        let client = client.clone();
        async move {
            client
                .fetch_leased_at_most("jobs", "workers", 1, LONG, 2, Duration::ZERO)
                .await
                .unwrap()
        }
    };
    let give_back = |client: &BrokerClient, offset, deliveries| {
        let client = client.clone();
        async move {
            let lease = vec![lease_of(offset, deliveries)];
            client
                .change_leases("jobs", "workers", lease, Duration::ZERO)
                .await
                .unwrap()
        }
    };
    // Offset 0 fails twice; at its third turn it is a dead letter and the
    // worker gets offset 1 instead.
    assert_eq!(deliveries(&lease_one(&client).await), [1]);
    give_back(&client, 0, 1).await;
    assert_eq!(deliveries(&lease_one(&client).await), [2]);
    give_back(&client, 0, 2).await;
    let next = lease_one(&client).await;
    assert_eq!((offsets(&next), deliveries(&next)), (vec![1], vec![1]));

    // What operators see: the listing and the metrics.
    let workers = &client.list_consumers("jobs").await.unwrap()[0];
    assert_eq!(
        (workers.next_offset, workers.leased, workers.redeliveries),
        (1, 1, 1),
        "{workers:?}"
    );
    assert_eq!((workers.dead_lettered, workers.acknowledged_ahead), (1, 0));
    let metrics = client.metrics().await.unwrap();
    let series = |name: &str| {
        metric_value(
            &metrics,
            &format!(r#"depot_broker_consumer_{name}{{consumer="workers",station="jobs"}}"#),
        )
    };
    assert_eq!(series("leased"), 1, "{metrics}");
    assert_eq!(series("redeliveries_total"), 1);
    assert_eq!(series("dead_lettered_total"), 1);
    assert_eq!(series("acknowledged_ahead"), 0);

    // Durable with the answer: a SIGKILL keeps the dead letter and the
    // position past it.
    let broker = broker.restart(&[]);
    let client = broker.client().await;
    let consumers = client.list_consumers("jobs").await.unwrap();
    assert_eq!(consumers[0].next_offset, 1, "{consumers:?}");
    let letters = client.list_dead_letters("jobs", 0, 10).await.unwrap();
    assert_eq!(letters.dead_letters.len(), 1);
    let letter = client
        .dead_letter("jobs", letters.dead_letters[0].id)
        .await
        .unwrap();
    assert_eq!(
        (letter.consumer.as_str(), letter.offset, letter.deliveries),
        ("workers", 0, 2)
    );
    assert!(letter.reason.contains("2 times"), "{}", letter.reason);
    assert_eq!(&letter.payload[..], b"0");
    assert_eq!(letter.producer, "root");

    // Other readers still have it.
    let audit = client
        .fetch_for_consumer("jobs", "audit", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(offsets(&audit), [0, 1, 2]);

    // A resend appends it again, as a new message the workers get.
    let resent = client
        .resend_dead_letters(wire::ResendDeadLetters {
            station: "jobs".into(),
            ids: vec![letter.id],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        resent.outcomes[0].outcome,
        Some(wire::resend_outcome::Outcome::Offset(3))
    );
    client
        .acknowledge("jobs", "workers", vec![1, 2])
        .await
        .unwrap();
    let redone = lease_one(&client).await;
    assert_eq!((offsets(&redone), deliveries(&redone)), (vec![3], vec![1]));
    assert_eq!(&redone.messages[0].payload[..], b"0");

    // A station that drops its dead letters: the consumer still goes on.
    client
        .update_station(
            "jobs",
            wire::StationSettings {
                keep_dead_letters: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    give_back(&client, 3, 1).await;
    assert_eq!(deliveries(&lease_one(&client).await), [2]);
    give_back(&client, 3, 2).await;
    let none = lease_one(&client).await;
    assert_eq!(offsets(&none), Vec::<u64>::new());
    let consumers = client.list_consumers("jobs").await.unwrap();
    let workers = consumers.iter().find(|c| c.consumer == "workers").unwrap();
    assert_eq!(workers.next_offset, 4);
    let letters = client.list_dead_letters("jobs", 0, 10).await.unwrap();
    assert!(
        letters.dead_letters.is_empty(),
        "the resent one left, none added"
    );

    let plain = wire::Fetch {
        station: "jobs".into(),
        consumer: "workers".into(),
        max_deliveries: 3,
        ..Default::default()
    };
    let (code, message) = broker_refusal(client.fetch_with(plain).await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("lease_ms"), "{message}");
}
