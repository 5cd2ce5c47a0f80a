//! Two stateless proxies in front of one remote broker: tokens work across
//! them, refresh anywhere, both recover when the broker comes back, and all
//! their messages land in one total order.

use std::{sync::Arc, time::Duration};

use crate::{
    harness::{PATIENCE, ROOT_PASSWORD, TestBroker, fetch_all},
    proxy_harness::{JSON, TestProxy, get, login, post},
};

async fn produce(proxy: &TestProxy, jwt: &str, body: &str) -> u16 {
    let auth = format!("Bearer {jwt}");
    let url = proxy.url("/stations/shared/produce/single");
    let answer = post(&url, &[("Authorization", &auth), JSON], body.to_owned()).await;
    if answer.status != 200 {
        eprintln!("produce answered {}: {}", answer.status, answer.body);
    }
    answer.status
}

async fn wait_until_ready(proxy: &TestProxy) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while get(&proxy.url("/health/readiness")).await.status != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy did not recover"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn proxies_share_tokens_survive_a_broker_restart_and_keep_one_order() {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let broker = TestBroker::start_with(data.clone(), &[]);
    let a = TestProxy::remote(broker.addr, &[]);
    let b = TestProxy::remote(broker.addr, &[]);

    // A token from A works on B, and B refreshes it.
    let (jwt, refresh) = login(&a, "root", ROOT_PASSWORD).await;
    assert_eq!(produce(&b, &jwt, r#"{"via":"b"}"#).await, 200);
    let refreshed = post(
        &b.url("/auth/refreshToken"),
        &[("Authorization", &format!("Bearer {refresh}"))],
        "",
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let jwt = refreshed.body["jwt"].as_str().unwrap().to_owned();
    // ... and the refresh token is spent for A too.
    let again = post(
        &a.url("/auth/refreshToken"),
        &[("Authorization", &format!("Bearer {refresh}"))],
        "",
    )
    .await;
    assert_eq!(again.status, 401);

    // The broker goes away: fast 503s, readiness fails.
    let addr = broker.addr;
    drop(broker);
    let started = std::time::Instant::now();
    assert_eq!(produce(&a, &jwt, "{}").await, 503);
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
    assert_eq!(get(&a.url("/health/readiness")).await.status, 503);

    // It comes back on the same address; both proxies recover by themselves.
    let broker = TestBroker::start_on(data, &addr.to_string(), &[]);
    wait_until_ready(&a).await;
    wait_until_ready(&b).await;

    let mut tasks = Vec::new();
    let jwt = &jwt;
    for (name, proxy) in [("a", &a), ("b", &b)] {
        for i in 0..25 {
            let body = format!(r#"{{"via":"{name}","i":{i}}}"#);
            tasks.push(async move { produce(proxy, jwt, &body).await });
        }
    }
    for status in futures::future::join_all(tasks).await {
        assert_eq!(status, 200);
    }
    let client = broker.client().await;
    let stored = fetch_all(&client, "shared", 0).await;
    let offsets: Vec<u64> = stored.iter().map(|m| m.offset).collect();
    assert_eq!(
        offsets,
        (0..stored.len() as u64).collect::<Vec<_>>(),
        "one dense order"
    );
    assert_eq!(
        stored.len(),
        1 + 50,
        "the first message and all 50 after the restart"
    );
    for name in ["a", "b"] {
        let from = stored
            .iter()
            .filter(|m| {
                std::str::from_utf8(&m.payload)
                    .unwrap()
                    .contains(&format!("\"via\":\"{name}\",\"i\""))
            })
            .count();
        assert_eq!(from, 25, "all of {name}'s messages");
    }
}

/// A batch the proxy accepts may encode to more than the remote broker's
/// frame limit: it goes as several frames, in order, instead of a frame the
/// broker must refuse (which closed the proxy's connection, and with it
/// every call in flight: 503).
#[actix_rt::test]
async fn a_batch_larger_than_the_brokers_frame_limit_lands_in_order() {
    let data = Arc::new(tempfile::TempDir::new().unwrap());
    let broker = TestBroker::start_with(data, &["--max-frame", "1MiB"]);
    let proxy = TestProxy::remote(broker.addr, &[]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let auth = format!("Bearer {jwt}");
    let url = proxy.url("/stations/large-batches/produce/batch");

    // ~3 MiB of 1 KiB messages, numbered.
    const COUNT: usize = 3_000;
    let pad = "x".repeat(1_000);
    let batch: Vec<String> = (0..COUNT)
        .map(|n| format!(r#"{{"n":{n},"pad":"{pad}"}}"#))
        .collect();
    let answer = post(
        &url,
        &[("Authorization", &auth), JSON],
        format!("[{}]", batch.join(",")),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["sent"], COUNT);
    let root = broker.client().await;
    let stored = fetch_all(&root, "large-batches", 0).await;
    let numbers: Vec<u64> = stored
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(numbers, (0..COUNT as u64).collect::<Vec<_>>());

    // A message no frame carries is refused in its place; the rest land.
    let huge = format!("\"{}\"", "y".repeat(1_100_000));
    let answer = post(
        &url,
        &[("Authorization", &auth), JSON],
        format!(r#"[{{"n":"before"}},{huge},{{"n":"after"}}]"#),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(
        (answer.body["sent"].clone(), answer.body["fail"].clone()),
        (2.into(), 1.into())
    );
    let error = answer.body["errors"][0].as_str().unwrap();
    assert!(
        error.contains("message 1") && error.contains("--max-frame"),
        "{error}"
    );
    let stored = fetch_all(&root, "large-batches", COUNT as u64).await;
    assert_eq!(stored.len(), 2);
}
