//! Long polls over HTTP: `GET /stations/{name}/messages?wait_ms=` waits for
//! the first message instead of answering empty, wakes as soon as one is
//! durable, and is bounded (the broker's `--max-fetch-wait`, the proxy's
//! `--http-max-waiting-fetches`), embedded and through a remote broker.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{
    harness::{ROOT_PASSWORD, TestBroker},
    proxy_harness::{
        Answer, JSON, TestProxy, create_station, login, produce_single, producer_user, send,
    },
};

/// Starts a fetch of `station` from `from` waiting up to `wait_ms`, on this
/// thread's runtime; its answer and how long it took.
fn start_fetch(
    proxy: &TestProxy,
    jwt: &str,
    station: &str,
    from: u64,
    wait_ms: u64,
) -> actix_rt::task::JoinHandle<(Answer, Duration)> {
    let url = proxy.url(&format!(
        "/stations/{station}/messages?from={from}&wait_ms={wait_ms}"
    ));
    let jwt = jwt.to_owned();
    actix_rt::spawn(async move {
        let started = Instant::now();
        let answer = send("GET", &url, &jwt, None).await;
        (answer, started.elapsed())
    })
}

async fn produce(proxy: &TestProxy, jwt: &str, station: &str, body: &str) {
    produce_single(proxy, jwt, station, &[JSON], body).await;
}

/// A waiting fetch holds until a message lands at its offset, then answers
/// with it; one that nothing reaches answers empty when its wait is over.
async fn a_waiting_fetch_wakes_when_a_message_lands(proxy: &TestProxy) {
    let (root, _) = login(proxy, "root", ROOT_PASSWORD).await;
    create_station(proxy, &root, "feed").await;

    let waiting = start_fetch(proxy, &root, "feed", 0, 20_000);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the fetch answered before a message"
    );
    // Produces go on while it waits.
    produce(proxy, &root, "feed", r#"{"n":0}"#).await;
    let (answer, took) = waiting.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["messages"][0]["data"], json!({"n": 0}));
    assert_eq!(answer.body["next_offset"], 1);
    assert!(took < Duration::from_secs(10), "woken late: {took:?}");

    // Messages already there are answered at once.
    produce(proxy, &root, "feed", r#"{"n":1}"#).await;
    let (answer, _) = start_fetch(proxy, &root, "feed", 1, 20_000).await.unwrap();
    assert_eq!(answer.body["messages"][0]["data"], json!({"n": 1}));

    // Nothing comes: empty, once the wait is over.
    let (answer, took) = start_fetch(proxy, &root, "feed", 2, 400).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["messages"], json!([]));
    assert_eq!(answer.body["next_offset"], 2);
    assert!(took >= Duration::from_millis(350), "did not wait: {took:?}");
}

#[actix_rt::test]
async fn a_waiting_fetch_wakes_when_a_message_lands_embedded() {
    a_waiting_fetch_wakes_when_a_message_lands(&TestProxy::embedded(&[])).await;
}

#[actix_rt::test]
async fn a_waiting_fetch_wakes_when_a_message_lands_remote() {
    let broker = TestBroker::start();
    a_waiting_fetch_wakes_when_a_message_lands(&TestProxy::remote(broker.addr, &[])).await;
}

#[actix_rt::test]
async fn waits_are_bounded_checked_and_end_with_their_station() {
    let proxy = TestProxy::embedded(&["--max-fetch-wait", "2s", "--http-max-waiting-fetches", "1"]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    for name in ["quiet", "doomed"] {
        create_station(&proxy, &root, name).await;
    }

    // A minute asked for, the broker's 2 s given; meanwhile the proxy's one
    // place is taken, and fetches that do not wait still work.
    let long = start_fetch(&proxy, &root, "quiet", 0, 60_000);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let (refused, _) = start_fetch(&proxy, &root, "quiet", 0, 1_000).await.unwrap();
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["success"], false);
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("--http-max-waiting-fetches"), "{error}");
    let at_once = send("GET", &proxy.url("/stations/quiet/messages"), &root, None).await;
    assert_eq!(at_once.status, 200, "{}", at_once.body);
    let (answer, took) = long.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["messages"], json!([]));
    assert!(took < Duration::from_secs(4), "not cut to 2 s: {took:?}");

    // The place came back; a station deleted under a waiting fetch ends it.
    let doomed = start_fetch(&proxy, &root, "doomed", 0, 60_000);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let deleted = send("DELETE", &proxy.url("/stations/doomed"), &root, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let (gone, took) = doomed.await.unwrap();
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert!(
        took < Duration::from_secs(2),
        "not ended by the delete: {took:?}"
    );

    // Waiting needs the consume right like any fetch.
    let producer = producer_user(&proxy, "writer", &["*"]).await;
    let (denied, _) = start_fetch(&proxy, &producer, "quiet", 0, 1_000)
        .await
        .unwrap();
    assert_eq!(denied.status, 403, "{}", denied.body);
}
