//! Two stateless proxies in front of one remote broker: tokens work across
//! them, refresh anywhere, both recover when the broker comes back, and all
//! their messages land in one total order.

use std::{sync::Arc, time::Duration};

use crate::{
    harness::{PATIENCE, ROOT_PASSWORD, TestBroker, fetch_all},
    proxy_harness::{TestProxy, get, login, post},
};

const JSON: (&str, &str) = ("Content-Type", "application/json");

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
