//! Consumer positions: a named reader fetches where it left off and commits
//! how far it got; positions are durable (a SIGKILL keeps every
//! acknowledged commit), bounded, checked against the station's end and
//! the consume right, and go with their station. Over the wire, HTTP
//! (embedded and remote), the CLI and WebSockets.

use std::sync::Arc;

use serde_json::{Value, json};
use tempfile::TempDir;

use depot_broker::client::BrokerClient;
use depot_schemas::wire::{self, ErrorCode};

use crate::{
    harness::{ROOT_PASSWORD, TestBroker, broker_refusal, json_message},
    proxy_harness::{TestProxy, create_station, login, produce_single, producer_user_of, send},
    websockets::WsClient,
};

fn offsets(batch: &wire::FetchResult) -> Vec<u64> {
    batch.messages.iter().map(|m| m.offset).collect()
}

async fn produce(client: &BrokerClient, station: &str, count: usize) {
    let messages = (0..count).map(|n| json_message(&n.to_string())).collect();
    client.produce(station, messages).await.unwrap();
}

#[tokio::test]
async fn a_consumer_goes_on_where_it_left_off_even_after_a_kill() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    client
        .create_station("orders", Default::default())
        .await
        .unwrap();
    produce(&client, "orders", 5).await;

    // A consumer without a position starts at the oldest message.
    let first = client
        .fetch_for_consumer("orders", "billing", 2, Default::default())
        .await
        .unwrap();
    assert_eq!(offsets(&first), [0, 1]);
    let committed = client
        .commit_position("orders", "billing", first.next_offset)
        .await
        .unwrap();
    assert_eq!((committed.next_offset, committed.lag), (2, 3));
    assert_eq!(committed.updated_by, "root");

    // Not committed: the same messages come again (at least once).
    for _ in 0..2 {
        let again = client
            .fetch_for_consumer("orders", "billing", 2, Default::default())
            .await
            .unwrap();
        assert_eq!(offsets(&again), [2, 3]);
    }
    // Another consumer has a position of its own.
    let audit = client
        .fetch_for_consumer("orders", "audit", 10, Default::default())
        .await
        .unwrap();
    assert_eq!(offsets(&audit), [0, 1, 2, 3, 4]);

    // A subscription can start there too.
    let mut following = client
        .subscribe_for_consumer("orders", "billing", 10)
        .await
        .unwrap();
    assert_eq!(following.start_offset(), 2);
    let pushed = following.next_batch().await.unwrap().unwrap();
    assert_eq!(pushed.first().map(|m| m.offset), Some(2), "{pushed:?}");

    // SIGKILL: no final flush; the acknowledged commit is on disk.
    let broker = broker.restart(&[]);
    let client = broker.client().await;
    let listed = client.list_consumers("orders").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0].consumer.as_str(),
            listed[0].next_offset,
            listed[0].lag
        ),
        ("billing", 2, 3)
    );
    let resumed = client
        .fetch_for_consumer("orders", "billing", 10, Default::default())
        .await
        .unwrap();
    assert_eq!(offsets(&resumed), [2, 3, 4]);

    // Moving back reads again; the end of the station is as far as it goes.
    client
        .commit_position("orders", "billing", 0)
        .await
        .unwrap();
    let (code, message) = broker_refusal(client.commit_position("orders", "billing", 6).await);
    assert_eq!(code, ErrorCode::BadRequest, "{message}");
    assert!(message.contains("next offset is 5"), "{message}");
    client
        .commit_position("orders", "billing", 5)
        .await
        .unwrap();
    let caught_up = client.list_consumers("orders").await.unwrap();
    assert_eq!(caught_up[0].lag, 0);

    // The lag is a metric too, read from the positions at each scrape.
    client.commit_position("orders", "audit", 1).await.unwrap();
    produce(&client, "orders", 2).await;
    let metrics = client.metrics().await.unwrap();
    for (consumer, lag) in [("audit", 6), ("billing", 2)] {
        let series =
            format!(r#"depot_broker_consumer_lag{{consumer="{consumer}",station="orders"}} {lag}"#);
        assert!(
            metrics.lines().any(|line| line == series),
            "{series} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn positions_are_checked_bounded_and_go_with_their_station() {
    let broker =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--max-consumers", "2"]);
    let client = broker.client().await;
    client
        .create_station("jobs", Default::default())
        .await
        .unwrap();
    produce(&client, "jobs", 3).await;

    let (code, message) = broker_refusal(client.commit_position("jobs", "Bad/Name", 0).await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(
        message.contains("^[a-z0-9][a-z0-9._-]{0,127}$"),
        "{message}"
    );
    let (code, _) = broker_refusal(client.commit_position("nowhere", "a", 0).await);
    assert_eq!(code, ErrorCode::StationNotFound);

    // Two consumers at most; the ones there may still move.
    client.commit_position("jobs", "a", 1).await.unwrap();
    client.commit_position("jobs", "b", 2).await.unwrap();
    let (code, message) = broker_refusal(client.commit_position("jobs", "c", 0).await);
    assert_eq!(code, ErrorCode::LimitExceeded);
    assert!(message.contains("--max-consumers"), "{message}");
    client.commit_position("jobs", "a", 3).await.unwrap();

    client.delete_consumer("jobs", "a").await.unwrap();
    let (code, _) = broker_refusal(client.delete_consumer("jobs", "a").await);
    assert_eq!(code, ErrorCode::ConsumerNotFound);
    client.commit_position("jobs", "c", 0).await.unwrap();

    // A user may only move consumers of stations it may consume from.
    client
        .create_user(wire::CreateUser {
            name: "reader".into(),
            password: "reader-password".into(),
            permissions: Some(wire::Permissions {
                consume: vec!["other.*".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let reader = BrokerClient::connect(broker.addr, "reader", "reader-password")
        .await
        .unwrap();
    let (code, _) = broker_refusal(reader.commit_position("jobs", "b", 0).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, _) = broker_refusal(reader.list_consumers("jobs").await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, _) = broker_refusal(
        reader
            .fetch_for_consumer("jobs", "b", 1, Default::default())
            .await,
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, _) = broker_refusal(reader.subscribe_for_consumer("jobs", "b", 1).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    let (code, _) = broker_refusal(client.subscribe_for_consumer("jobs", "Not/Valid", 1).await);
    assert_eq!(code, ErrorCode::BadRequest);

    // Deleted with the station: a new one of the same name starts afresh.
    client.delete_station("jobs").await.unwrap();
    client
        .create_station("jobs", Default::default())
        .await
        .unwrap();
    assert_eq!(client.list_consumers("jobs").await.unwrap(), []);
}

/// The HTTP routes: fetch at a consumer's position, commit, list, show,
/// delete, and their refusals.
async fn consumers_over_http(proxy: &TestProxy, broker: &BrokerClient) {
    let (root, _) = login(proxy, "root", ROOT_PASSWORD).await;
    create_station(proxy, &root, "clicks").await;
    for n in 0..3 {
        let body = format!(r#"{{"n":{n}}}"#);
        produce_single(
            proxy,
            &root,
            "clicks",
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
    }
    let fetch = |query: &str| proxy.url(&format!("/stations/clicks/messages?{query}"));
    let consumer = proxy.url("/stations/clicks/consumers/web");
    let data = |answer: &Value| -> Vec<Value> {
        let messages = answer["messages"].as_array().unwrap();
        messages.iter().map(|m| m["data"].clone()).collect()
    };

    let first = send("GET", &fetch("consumer=web&limit=2"), &root, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(data(&first.body), [json!({"n": 0}), json!({"n": 1})]);
    assert_eq!(first.body["next_offset"], 2);

    let commit = Some(json!({ "next_offset": 2 }));
    let committed = send("PUT", &consumer, &root, commit).await;
    assert_eq!(committed.status, 200, "{}", committed.body);
    assert_eq!(committed.body["success"], true);
    assert_eq!(committed.body["consumer"]["next_offset"], 2);
    assert_eq!(committed.body["consumer"]["lag"], 1);
    assert_eq!(committed.body["consumer"]["updated_by"], "root");

    let rest = send("GET", &fetch("consumer=web"), &root, None).await;
    assert_eq!(data(&rest.body), [json!({"n": 2})]);

    let listed = send("GET", &proxy.url("/stations/clicks/consumers"), &root, None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["consumers"][0]["consumer"], "web");
    let shown = send("GET", &consumer, &root, None).await;
    assert_eq!(shown.body["consumer"]["next_offset"], 2);
    let unknown = proxy.url("/stations/clicks/consumers/nobody");
    let missing = send("GET", &unknown, &root, None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.body["success"], false);
    let invalid = proxy.url("/stations/clicks/consumers/Not.Valid");
    let refused = send("GET", &invalid, &root, None).await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    // Refusals, each in the JSON error shape.
    let both = send("GET", &fetch("from=0&consumer=web"), &root, None).await;
    assert_eq!(both.status, 400, "{}", both.body);
    let beyond = send("PUT", &consumer, &root, Some(json!({ "next_offset": 9 }))).await;
    assert_eq!(beyond.status, 400, "{}", beyond.body);
    assert!(
        beyond.body["error"]
            .as_str()
            .unwrap()
            .contains("next offset is 3")
    );
    let malformed = send("PUT", &consumer, &root, Some(json!({ "offset": 1 }))).await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    let writer = producer_user_of(broker, proxy, "writer", &["*"]).await;
    let denied = send(
        "GET",
        &proxy.url("/stations/clicks/consumers"),
        &writer,
        None,
    )
    .await;
    assert_eq!(denied.status, 403, "{}", denied.body);

    let deleted = send("DELETE", &consumer, &root, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let again = send("DELETE", &consumer, &root, None).await;
    assert_eq!(again.status, 404, "{}", again.body);
    // Forgotten: the next fetch starts at the oldest message again.
    let restarted = send("GET", &fetch("consumer=web&limit=1"), &root, None).await;
    assert_eq!(data(&restarted.body), [json!({"n": 0})]);
}

#[actix_rt::test]
async fn consumers_over_http_embedded() {
    let proxy = TestProxy::embedded(&[]);
    consumers_over_http(&proxy, &proxy.broker_client().await).await;
}

#[actix_rt::test]
async fn consumers_over_http_remote() {
    let broker = TestBroker::start();
    let proxy = TestProxy::remote(broker.addr, &[]);
    consumers_over_http(&proxy, &broker.client().await).await;
}

#[tokio::test]
async fn the_cli_fetches_for_a_consumer_and_commits_after_printing() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    client
        .create_station("mail", Default::default())
        .await
        .unwrap();
    produce(&client, "mail", 3).await;

    let fetch = |args: &[&str]| {
        let mut all = vec!["--json", "fetch", "mail", "--consumer", "sender"];
        all.extend_from_slice(args);
        let out = broker.cli_ok(&all);
        out.lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["offset"].clone())
            .collect::<Vec<_>>()
    };
    // Without --commit nothing moves; with it the next fetch goes on.
    assert_eq!(fetch(&["--count", "2"]), [json!(0), json!(1)]);
    assert_eq!(fetch(&["--count", "2", "--commit"]), [json!(0), json!(1)]);
    assert_eq!(fetch(&["--commit"]), [json!(2)]);
    assert_eq!(fetch(&["--commit"]), Vec::<Value>::new());

    let listed: Value =
        serde_json::from_str(&broker.cli_ok(&["--json", "consumers", "list", "mail"])).unwrap();
    assert_eq!(listed[0]["consumer"], "sender");
    assert_eq!(listed[0]["next_offset"], 3);
    assert_eq!(listed[0]["lag"], 0);

    let table = broker.cli_ok(&["consumers", "commit", "mail", "sender", "1"]);
    assert!(table.contains("sender") && table.contains('2'), "{table}");
    assert_eq!(fetch(&[]), [json!(1), json!(2)]);

    broker.cli_ok(&["consumers", "delete", "mail", "sender"]);
    let out = broker.cli(&["consumers", "delete", "mail", "sender"]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("consumer sender has no position"), "{error}");
    // --commit needs --consumer, and --from cannot go with it.
    assert!(!broker.cli(&["fetch", "mail", "--commit"]).status.success());
    let both = broker.cli(&["fetch", "mail", "--from", "1", "--consumer", "x"]);
    assert!(!both.status.success());
}

#[actix_rt::test]
async fn a_websocket_subscribes_where_its_consumer_left_off_and_commits() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    create_station(&proxy, &root, "ticks").await;
    for n in 0..3 {
        let body = format!(r#"{{"n":{n}}}"#);
        produce_single(
            &proxy,
            &root,
            "ticks",
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
    }
    let mut socket = WsClient::authorized(&proxy, &root).await;
    let subscribe = json!({"action": "subscribe", "station": "ticks", "consumer": "screen"});

    // No position yet: from the oldest message.
    socket.send(subscribe.clone()).await;
    let subscribed = socket.json().await;
    assert_eq!(
        (&subscribed["action"], &subscribed["from"]),
        (&json!("subscribed"), &json!(0))
    );
    for n in 0..3 {
        assert_eq!(socket.json().await["offset"], n);
    }
    let commit = json!({"action": "commit", "station": "ticks", "consumer": "screen", "next_offset": 2, "id": 9});
    socket.send(commit).await;
    let committed = socket.json().await;
    assert_eq!(committed["action"], "committed", "{committed}");
    assert_eq!(
        (&committed["next_offset"], &committed["lag"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(committed["id"], 9);

    // Again, on a new socket: from the committed position.
    let mut again = WsClient::authorized(&proxy, &root).await;
    again.send(subscribe).await;
    assert_eq!(again.json().await["from"], 2);
    assert_eq!(again.json().await["offset"], 2);

    // Refusals come as error frames; the socket lives on.
    let refused = [
        json!({"action": "subscribe", "station": "ticks", "consumer": "x", "from": 0}),
        json!({"action": "subscribe", "station": "ticks", "consumer": "Not/Valid"}),
        json!({"action": "commit", "station": "ticks", "consumer": "screen", "next_offset": 7}),
        json!({"action": "commit", "station": "ticks", "consumer": "screen"}),
    ];
    for frame in refused {
        socket.send(frame.clone()).await;
        let answer = socket.json().await;
        assert_eq!(answer["action"], "error", "{frame} -> {answer}");
    }
    socket.send(json!({"action": "ping"})).await;
    assert_eq!(socket.json().await["action"], "pong");
}

/// `depot tail --consumer NAME` as a child process: the offsets of the
/// first `count` messages it prints. It is killed once its position has
/// moved past them (it commits after printing).
fn tail_offsets(broker: &TestBroker, station: &str, consumer: &str, count: usize) -> Vec<u64> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut tail = Command::new(crate::harness::CLI_BIN)
        .args(["--json", "tail", station, "--consumer", consumer])
        .env("DEPOT_BROKER", broker.addr.to_string())
        .env("DEPOT_PASSWORD", ROOT_PASSWORD)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (printed, lines) = std::sync::mpsc::channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line: Value = serde_json::from_str(&line).unwrap();
            let _ = printed.send(line["offset"].as_u64().unwrap());
        }
    });
    let mut offsets = Vec::new();
    while offsets.len() < count {
        match lines.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(offset) => offsets.push(offset),
            Err(_) => {
                tail.kill().unwrap();
                panic!("the tail printed {offsets:?} and then nothing for 10 s");
            }
        }
    }
    let wanted = offsets.last().map(|last| last + 1);
    for attempt in 0.. {
        let listed: Value =
            serde_json::from_str(&broker.cli_ok(&["--json", "consumers", "list", station]))
                .unwrap();
        let at = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["consumer"] == consumer);
        if at.and_then(|c| c["next_offset"].as_u64()) == wanted {
            break;
        }
        assert!(
            attempt < 100,
            "{consumer} never committed past {offsets:?}: {listed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    tail.kill().unwrap();
    tail.wait().unwrap();
    offsets
}

#[test]
fn a_tail_for_a_consumer_goes_on_where_the_last_one_stopped() {
    let broker = TestBroker::start();
    for n in 0..3 {
        broker.cli_ok(&["produce", "feed", &n.to_string()]);
    }
    // From the oldest message, committing past each printed batch.
    assert_eq!(tail_offsets(&broker, "feed", "screen", 3), [0, 1, 2]);
    broker.cli_ok(&["produce", "feed", "3"]);
    assert_eq!(tail_offsets(&broker, "feed", "screen", 1), [3]);
}
