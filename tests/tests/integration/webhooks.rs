//! Webhook subscriptions against real receivers: signed CloudEvents
//! deliveries in order under retries, the destination policy, and resume
//! after a SIGKILL with nothing skipped.

use std::{
    process::Command,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use serde_json::Value;
use tempfile::TempDir;

use crate::{
    harness::{TestBroker, json_message},
    webhook_receiver::{Receiver, verify, wait_until},
};

/// Produces `{"n": i}` to `orders` for each i, one message per request.
pub async fn produce_numbered(
    client: &depot_broker::client::BrokerClient,
    numbers: std::ops::Range<u32>,
) {
    for i in numbers {
        let message = json_message(&format!("{{\"n\":{i}}}"));
        client.produce("orders", vec![message]).await.unwrap();
    }
}

#[actix_rt::test]
async fn ordered_deliveries_are_signed_cloudevents_retried_in_order() {
    let broker =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--allow-private-urls"]);
    let receiver = Receiver::default();
    let url = format!("{}/flaky", receiver.start());
    broker.cli_ok(&["stations", "create", "orders"]);
    let created = broker.cli_ok(&[
        "--json",
        "subscriptions",
        "create",
        "billing",
        "--station",
        "orders",
        "--url",
        &url,
        "--mode",
        "ordered",
        "--retry-schedule",
        "0s,50ms,50ms",
    ]);
    let created: Value = serde_json::from_str(&created).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    let client = broker.client().await;
    produce_numbered(&client, 0..8).await;
    wait_until("8 deliveries", || receiver.delivered().len() == 8).await;

    let seen = receiver.seen();
    assert_eq!(seen.len(), 16, "each delivery failed once, then succeeded");
    for (i, pair) in seen.chunks(2).enumerate() {
        assert_eq!(
            pair[0].id, pair[1].id,
            "the webhook-id stays across retries"
        );
        assert_eq!((pair[0].answered, pair[1].answered), (500, 200));
        for attempt in pair {
            assert!(verify(&secret, attempt), "signature of {attempt:?}");
            assert!(
                !attempt.body.contains(&secret),
                "the secret is never in the body"
            );
        }
        let event: Value = serde_json::from_str(&pair[1].body).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], "/stations/orders");
        assert_eq!(event["type"], "depot.message.published");
        assert_eq!(event["depotoffset"], i as u64, "strictly in offset order");
        assert_eq!(event["data"], serde_json::json!({"n": i}));
    }

    // The receiver sees each answer before the broker records it.
    let mut deliveries = Vec::new();
    wait_until("8 completed records", || {
        let listed = broker.cli_ok(&["--json", "subscriptions", "deliveries", "billing"]);
        let listed: Value = serde_json::from_str(&listed).unwrap();
        deliveries = listed.as_array().unwrap().clone();
        deliveries.len() == 8 && deliveries.iter().all(|d| d["status"] == "completed")
    })
    .await;
    assert!(deliveries.iter().all(|d| d["attempts"] == 2));
    let failed = broker.cli_ok(&["--json", "subscriptions", "dead-letters", "billing"]);
    assert_eq!(failed.trim(), "[]");
}

#[actix_rt::test]
async fn an_https_receiver_with_a_private_ca_is_trusted_with_outbound_tls_ca() {
    let identity = crate::https::identity();
    let ca = identity.cert.to_str().unwrap();
    let receiver = Receiver::default();
    let url = format!("{}/ok", receiver.start_tls(&identity.cert, &identity.key));
    // One broker trusts the receiver's CA, one does not.
    let trusting = TestBroker::start_with(
        Arc::new(TempDir::new().unwrap()),
        &["--allow-private-urls", "--outbound-tls-ca", ca],
    );
    let strict =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--allow-private-urls"]);
    for broker in [&trusting, &strict] {
        broker.cli_ok(&["stations", "create", "orders"]);
        broker.cli_ok(&[
            "subscriptions",
            "create",
            "internal",
            "--station",
            "orders",
            "--url",
            &url,
            "--retry-schedule",
            "0s",
            "--max-attempts",
            "1",
        ]);
        produce_numbered(&broker.client().await, 0..1).await;
    }
    wait_until("the trusting broker's delivery", || {
        receiver.delivered().len() == 1
    })
    .await;
    let mut failed = Vec::new();
    wait_until("the strict broker's dead letter", || {
        let listed = strict.cli_ok(&["--json", "subscriptions", "dead-letters", "internal"]);
        failed = serde_json::from_str::<Value>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        !failed.is_empty()
    })
    .await;
    let error = failed[0]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("certificate") || error.contains("Certificate"),
        "{failed:?}"
    );
    assert_eq!(
        receiver.delivered().len(),
        1,
        "nothing reached it unverified"
    );

    // A CA file that cannot be read stops the start, naming the flag.
    let data = TempDir::new().unwrap();
    let bad = Command::new(crate::harness::BROKER_BIN)
        .arg("--data")
        .arg(data.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--outbound-tls-ca",
            "/no/such/ca.pem",
        ])
        .env("DEPOT_ROOT_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--outbound-tls-ca"));
}

#[actix_rt::test]
async fn internal_destinations_are_refused_unless_allowed() {
    let broker = TestBroker::start();
    broker.cli_ok(&["stations", "create", "orders"]);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://localhost/x",
        "ftp://example.com/",
    ] {
        let out = broker.cli(&[
            "subscriptions",
            "create",
            "s",
            "--station",
            "orders",
            "--url",
            url,
        ]);
        assert!(!out.status.success(), "{url} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("private")
                || stderr.contains("loopback")
                || stderr.contains("only http"),
            "{url}: {stderr}"
        );
    }
    assert_eq!(
        broker.cli_ok(&["--json", "subscriptions", "list"]).trim(),
        "[]"
    );
}

#[actix_rt::test]
async fn pending_deliveries_resume_after_a_sigkill_and_nothing_is_skipped() {
    let data = Arc::new(TempDir::new().unwrap());
    let broker = TestBroker::start_with(data.clone(), &["--allow-private-urls"]);
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = format!("{}/down", receiver.start());
    broker.cli_ok(&["stations", "create", "orders"]);
    broker.cli_ok(&[
        "subscriptions",
        "create",
        "billing",
        "--station",
        "orders",
        "--url",
        &url,
        "--retry-schedule",
        "0s,200ms",
        "--max-attempts",
        "100",
        "--concurrency",
        "4",
    ]);
    let client = broker.client().await;
    produce_numbered(&client, 0..5).await;
    // Every delivery has been tried (and refused) at least once.
    wait_until("first attempts", || {
        let ids: std::collections::HashSet<String> =
            receiver.seen().into_iter().map(|s| s.id).collect();
        ids.len() == 5
    })
    .await;
    let ids_before: std::collections::HashSet<String> =
        receiver.seen().into_iter().map(|s| s.id).collect();
    drop(client);

    // Killed mid-retry; messages produced while it is down are not skipped.
    let broker = broker.restart(&["--allow-private-urls"]);
    let client = broker.client().await;
    client
        .produce("orders", vec![json_message("{\"n\":5}")])
        .await
        .unwrap();
    receiver.down.store(false, Ordering::SeqCst);
    wait_until("6 deliveries", || {
        let ids: std::collections::HashSet<String> =
            receiver.delivered().into_iter().map(|s| s.id).collect();
        ids.len() == 6
    })
    .await;
    let delivered = receiver.delivered();
    let offsets: std::collections::BTreeSet<u64> = delivered
        .iter()
        .map(|s| {
            serde_json::from_str::<Value>(&s.body).unwrap()["depotoffset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, (0..6).collect());
    for id in &ids_before {
        assert!(
            delivered.iter().any(|s| &s.id == id),
            "{id} kept its webhook-id after the restart"
        );
    }
}

#[actix_rt::test]
async fn failed_deliveries_are_dead_letters_and_can_be_resent() {
    let broker =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--allow-private-urls"]);
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = format!("{}/down", receiver.start());
    broker.cli_ok(&["stations", "create", "orders"]);
    let args = [
        "subscriptions",
        "create",
        "billing",
        "--station",
        "orders",
        "--url",
        &url,
    ];
    broker.cli_ok(
        &[
            &args[..],
            &["--retry-schedule", "0s,20ms", "--max-attempts", "2"],
        ]
        .concat(),
    );
    let client = broker.client().await;
    produce_numbered(&client, 0..3).await;
    let failed = || {
        let out = broker.cli_ok(&["--json", "subscriptions", "dead-letters", "billing"]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    wait_until("3 failed deliveries", || failed().len() == 3).await;
    assert_eq!(receiver.seen().len(), 6, "two attempts each, then given up");
    let first = failed()[0].clone();
    assert_eq!(first["attempts"], 2);
    assert_eq!(first["last_status"], 503);

    // The endpoint is back: resend one by id, then the rest by time.
    receiver.down.store(false, Ordering::SeqCst);
    let id = first["id"].as_str().unwrap();
    assert!(
        broker
            .cli_ok(&["subscriptions", "resend", "billing", id])
            .contains("1 deliveries")
    );
    wait_until("the resent delivery", || receiver.delivered().len() == 1).await;
    assert_eq!(receiver.delivered()[0].id, id, "the same webhook-id");
    broker.cli_ok(&["subscriptions", "resend", "billing", "--failed-since", "1h"]);
    wait_until("all delivered", || receiver.delivered().len() == 3).await;
    wait_until("no dead letters", || failed().is_empty()).await;
    let unknown = broker.cli(&["subscriptions", "resend", "billing", "no-such-delivery"]);
    assert!(!unknown.status.success());
}

#[actix_rt::test]
async fn a_paused_subscription_delivers_nothing_until_resumed() {
    let broker =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--allow-private-urls"]);
    let receiver = Receiver::default();
    let url = format!("{}/ok", receiver.start());
    broker.cli_ok(&["stations", "create", "orders"]);
    broker.cli_ok(&[
        "subscriptions",
        "create",
        "audit",
        "--station",
        "orders",
        "--url",
        &url,
    ]);
    let paused = broker.cli_ok(&["--json", "subscriptions", "pause", "audit"]);
    assert_eq!(
        serde_json::from_str::<Value>(&paused).unwrap()["paused"],
        true
    );
    let client = broker.client().await;
    produce_numbered(&client, 0..3).await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.seen().is_empty(),
        "a paused subscription delivered"
    );
    broker.cli_ok(&["subscriptions", "resume", "audit"]);
    wait_until("3 deliveries after resuming", || {
        receiver.delivered().len() == 3
    })
    .await;
    let listed = broker.cli_ok(&["--json", "subscriptions", "list"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["cursor"], 3);
    assert!(
        listed[0].get("secret").is_none_or(Value::is_null),
        "secrets are shown once"
    );
    broker.cli_ok(&["subscriptions", "delete", "audit"]);
    assert_eq!(
        broker.cli_ok(&["--json", "subscriptions", "list"]).trim(),
        "[]"
    );
}

/// Lists `path` until it holds `count` deliveries: a receiver sees its
/// answer before the broker records it as completed.
async fn completed_deliveries(
    proxy: &crate::proxy_harness::TestProxy,
    jwt: &str,
    path: &str,
    count: usize,
) -> crate::proxy_harness::Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let listed = crate::proxy_harness::send("GET", &proxy.url(path), jwt, None).await;
        if listed.body["deliveries"].as_array().map(Vec::len) == Some(count) {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} completed deliveries: {}",
            listed.body
        );
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn subscriptions_are_managed_over_http_in_the_seeds_shape() {
    use crate::proxy_harness::{TestProxy, login, post, send};

    let proxy = TestProxy::embedded(&["--allow-private-urls"]);
    let (jwt, _) = login(&proxy, "root", crate::harness::ROOT_PASSWORD).await;
    let receiver = Receiver::default();
    let url = format!("{}/ok", receiver.start());
    // The seed's topic: a station named by its id, described by its name.
    let topic = serde_json::json!({"topic": {"id": "topic", "name": "Topic"}});
    let created = send("POST", &proxy.url("/v1/topics"), &jwt, Some(topic)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["id"], "topic");
    assert_eq!(created.body["name"], "Topic");
    assert_eq!(created.body["created_at"], created.body["updated_at"]);
    let station = send("GET", &proxy.url("/stations/topic"), &jwt, None).await;
    assert_eq!(station.body["station"]["description"], "Topic");
    // The seed's request as written (but its URL): its secret token is the
    // signing key, answered in the Standard Webhooks form receivers use.
    let body = serde_json::json!({"subscription": {
        "id": "httpbin-post", "topic_id": "topic", "name": "Httpbin Post", "url": url,
        "secret_token": "my-super-secret-token", "max_delivery_attempts": 5,
        "delivery_attempt_delay": 60, "delivery_attempt_timeout": 5,
    }});
    let created = send("POST", &proxy.url("/v1/subscriptions"), &jwt, Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["name"], "httpbin-post");
    assert_eq!(created.body["description"], "Httpbin Post");
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret, "whsec_bXktc3VwZXItc2VjcmV0LXRva2Vu");
    assert_eq!(created.body["fixed_delay_ms"], 60_000);
    assert_eq!(created.body["timeout_ms"], 5_000);

    let auth = format!("Bearer {jwt}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    // The seed's message, its data a string holding JSON.
    let message = serde_json::json!({"message": {
        "topic_id": "topic", "content_type": "application/json", "data": "{\"name\": \"Allisson\"}",
    }});
    let published = send("POST", &proxy.url("/v1/messages"), &jwt, Some(message)).await;
    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(published.body["topic_id"], "topic");
    assert_eq!(published.body["content_type"], "application/json");
    assert_eq!(published.body["data"], "eyJuYW1lIjogIkFsbGlzc29uIn0=");
    let message_id = published.body["id"].as_str().unwrap().to_owned();
    wait_until("the delivery", || receiver.delivered().len() == 1).await;
    assert!(verify(&secret, &receiver.delivered()[0]));

    let path = "/v1/subscriptions/httpbin-post/deliveries?status=completed";
    let deliveries = completed_deliveries(&proxy, &jwt, path, 1).await;
    assert_eq!(deliveries.body["deliveries"][0]["delivery_attempts"], 1);
    assert_eq!(
        deliveries.body["deliveries"][0]["id"],
        receiver.delivered()[0].id
    );
    // The seed's delivery and delivery-attempt lookups.
    let id = receiver.delivered()[0].id.clone();
    let delivery = send(
        "GET",
        &proxy.url(&format!("/v1/deliveries/{id}")),
        &jwt,
        None,
    )
    .await;
    assert_eq!(delivery.status, 200, "{}", delivery.body);
    assert_eq!(delivery.body["topic_id"], "topic");
    assert_eq!(delivery.body["subscription_name"], "httpbin-post");
    assert_eq!(delivery.body["status"], "completed");
    assert_eq!(delivery.body["max_delivery_attempts"], 5);
    assert_eq!(delivery.body["message_id"], message_id);
    assert_eq!(delivery.body["data"], "eyJuYW1lIjogIkFsbGlzc29uIn0=");
    let attempt_path = format!("/v1/delivery-attempts/{id}.1");
    let attempt = send("GET", &proxy.url(&attempt_path), &jwt, None).await;
    assert_eq!(attempt.status, 200, "{}", attempt.body);
    assert_eq!(attempt.body["delivery_id"], id);
    assert_eq!(attempt.body["response_status_code"], 200);
    assert_eq!(attempt.body["success"], true);
    assert!(attempt.body["execution_duration"].is_u64());
    assert!(
        attempt.body["request"]
            .as_str()
            .unwrap()
            .contains("webhook-id: ")
    );
    let attempts = send(
        "GET",
        &proxy.url(&format!("/v1/delivery-attempts?delivery_id={id}")),
        &jwt,
        None,
    )
    .await;
    assert_eq!(
        attempts.body["delivery_attempts"][0]["id"],
        format!("{id}.1")
    );
    for missing in ["/v1/deliveries/nope", "/v1/delivery-attempts/nope.1"] {
        let answer = send("GET", &proxy.url(missing), &jwt, None).await;
        assert_eq!(answer.status, 404, "{missing}: {}", answer.body);
        assert_eq!(answer.body["success"], false);
    }
    // More messages, listed across subscriptions in pages of two.
    for n in 0..4 {
        post(
            &proxy.url("/stations/topic/produce/single"),
            &headers,
            format!("{{\"n\":{n}}}"),
        )
        .await;
    }
    wait_until("5 deliveries", || receiver.delivered().len() == 5).await;
    completed_deliveries(&proxy, &jwt, "/v1/deliveries?status=completed", 5).await;
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let path = format!("/v1/deliveries?status=completed&limit=2&after={after}");
        let page = send("GET", &proxy.url(&path), &jwt, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for d in page.body["deliveries"].as_array().unwrap() {
            ids.push(d["id"].as_str().unwrap().to_owned());
        }
        if page.body["more"] != true {
            break;
        }
        after = ids.last().unwrap().clone();
    }
    let mut expected: Vec<String> = receiver.delivered().into_iter().map(|s| s.id).collect();
    expected.sort();
    let mut listed_ids = ids.clone();
    listed_ids.sort();
    assert_eq!(listed_ids, expected, "every delivery once, in pages");

    // A change over HTTP, in the seed's field names.
    let change = serde_json::json!({"subscription": {
        "max_delivery_attempts": 7, "mode": "ordered", "description": "Posts to the receiver",
    }});
    let changed = send(
        "PATCH",
        &proxy.url("/v1/subscriptions/httpbin-post"),
        &jwt,
        Some(change),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["max_attempts"], 7);
    assert_eq!(changed.body["mode"], "ordered");
    assert_eq!(changed.body["description"], "Posts to the receiver");
    assert_eq!(changed.body["circuit"], "closed");
    // Depot's own form names it by "name"; the seed's form cannot say both.
    let own = serde_json::json!({"subscription": {
        "name": "second", "description": "Depot's form", "station": "topic", "url": url,
    }});
    let second = send("POST", &proxy.url("/v1/subscriptions"), &jwt, Some(own)).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.body["name"], "second");
    assert_eq!(second.body["description"], "Depot's form");
    let both = serde_json::json!({"subscription": {
        "id": "third", "name": "Third", "description": "also", "topic_id": "topic", "url": url,
    }});
    let refused = send("POST", &proxy.url("/v1/subscriptions"), &jwt, Some(both)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let short = serde_json::json!({"subscription": {
        "id": "fourth", "topic_id": "topic", "url": url, "secret_token": "short",
    }});
    let refused = send("POST", &proxy.url("/v1/subscriptions"), &jwt, Some(short)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("16 to 64 bytes")
    );
    assert_eq!(
        changed.body["counts"]["delivered"], 5,
        "counts are kept across an update"
    );
    let metrics = crate::proxy_harness::get_text(&proxy.url("/metrics"))
        .await
        .1;
    assert!(
        metrics.contains("depot_proxy_http_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("depot_broker_delivery_delivered_total{station=\"topic\",subscription=\"httpbin-post\"} 5"),
        "{metrics}"
    );

    let listed = send(
        "GET",
        &proxy.url("/v1/subscriptions?station=topic"),
        &jwt,
        None,
    )
    .await;
    assert_eq!(listed.body["subscriptions"][0]["cursor"], 5);
    assert!(
        listed.body["subscriptions"][0]["secret"].is_null(),
        "shown once only"
    );
    let paused = send(
        "POST",
        &proxy.url("/v1/subscriptions/httpbin-post/pause"),
        &jwt,
        None,
    )
    .await;
    assert_eq!(paused.body["paused"], true);
    let internal = serde_json::json!({"subscription": {"id": "x", "topic_id": "topic", "url": "http://10.0.0.1/"}});
    let open = send(
        "POST",
        &proxy.url("/v1/subscriptions"),
        &jwt,
        Some(internal),
    )
    .await;
    assert_eq!(
        open.status, 201,
        "--allow-private-urls lets tests call private addresses"
    );
    let deleted = send(
        "DELETE",
        &proxy.url("/v1/subscriptions/httpbin-post"),
        &jwt,
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    let gone = send(
        "GET",
        &proxy.url("/v1/subscriptions/httpbin-post"),
        &jwt,
        None,
    )
    .await;
    assert_eq!(gone.status, 404);
}
