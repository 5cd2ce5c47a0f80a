//! What each kind of answer does to a delivery, against a real scripted
//! receiver: 2xx (200, 203, 204) delivers, other 4xx (400, 410) fail for
//! good, 429 honours Retry-After, 5xx and hangs past the timeout retry, a
//! refused connection retries until the endpoint comes up; the records
//! (deliveries, attempts) say so, looked up by id; the circuit breaker stops
//! hammering an endpoint that keeps failing; updates and the max rate apply.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

use crate::{
    harness::TestBroker,
    webhook_receiver::{Receiver, verify, wait_until},
    webhooks::produce_numbered,
};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Creates a subscription to `orders` and returns its secret.
fn subscribe(broker: &TestBroker, name: &str, url: &str, extra: &[&str]) -> String {
    let args = [
        "--json",
        "subscriptions",
        "create",
        name,
        "--station",
        "orders",
        "--url",
        url,
    ];
    let created = json(&broker.cli_ok(&[&args[..], extra].concat()));
    created["secret"].as_str().unwrap().to_owned()
}

/// The subscription's one delivery, once it is no longer pending.
async fn settled_delivery(broker: &TestBroker, name: &str) -> Value {
    let mut delivery = Value::Null;
    wait_until(&format!("{name}'s delivery to settle"), || {
        let list = json(&broker.cli_ok(&["--json", "subscriptions", "deliveries", name]));
        delivery = list[0].clone();
        delivery["status"] == "completed" || delivery["status"] == "failed"
    })
    .await;
    delivery
}

#[actix_rt::test]
async fn each_answer_gets_its_outcome_and_the_records_say_so() {
    let broker =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--allow-private-urls"]);
    let receiver = Receiver::default();
    let base = receiver.start();
    // An endpoint that is down (nothing listens) and comes up later.
    let late = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let late_url = format!("http://{}/late", late.local_addr().unwrap());
    drop(late);
    broker.cli_ok(&["stations", "create", "orders"]);
    let fast = ["--retry-schedule", "0s,50ms,2s", "--max-attempts", "3"];
    let cases: [(&str, String, &[&str]); 9] = [
        ("ok-200", format!("{base}/status/200"), &fast),
        ("ok-203", format!("{base}/status/203"), &fast),
        ("ok-204", format!("{base}/status/204"), &fast),
        ("bad-400", format!("{base}/status/400"), &fast),
        ("gone-410", format!("{base}/status/410"), &fast),
        ("flaky-500", format!("{base}/flaky"), &fast),
        ("busy-429", format!("{base}/retry-after/1"), &fast),
        (
            "hang",
            format!("{base}/hang/5000"),
            &[
                "--retry-schedule",
                "0s,50ms",
                "--max-attempts",
                "2",
                "--timeout",
                "300ms",
            ],
        ),
        (
            "late",
            late_url.clone(),
            &["--retry-schedule", "0s,300ms", "--max-attempts", "50"],
        ),
    ];
    let mut secrets = std::collections::HashMap::new();
    for (name, url, extra) in &cases {
        secrets.insert(*name, subscribe(&broker, name, url, extra));
    }
    let client = broker.client().await;
    produce_numbered(&client, 0..1).await;

    for (name, status, attempts, last) in [
        ("ok-200", "completed", 1, 200),
        ("ok-203", "completed", 1, 203),
        ("ok-204", "completed", 1, 204),
        ("bad-400", "failed", 1, 400),
        ("gone-410", "failed", 1, 410),
        ("flaky-500", "completed", 2, 200),
        ("busy-429", "completed", 2, 200),
    ] {
        let delivery = settled_delivery(&broker, name).await;
        assert_eq!(delivery["status"], status, "{name}: {delivery}");
        assert_eq!(delivery["attempts"], attempts, "{name}: {delivery}");
        assert_eq!(delivery["last_status"], last, "{name}: {delivery}");
    }
    // 429 + Retry-After: 1 waited a second (not the schedule's 50 ms).
    let busy = receiver.seen_at("/retry-after/1");
    assert_eq!(busy.len(), 2);
    let waited = busy[1].at - busy[0].at;
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    // Every request was signed, whatever the answer.
    for seen in receiver.seen() {
        let name = cases
            .iter()
            .find(|(_, url, _)| url.ends_with(&seen.path))
            .unwrap()
            .0;
        assert!(verify(&secrets[name], &seen), "{name}: {seen:?}");
    }

    // A hang past the timeout is an attempt that failed with an error.
    let hang = settled_delivery(&broker, "hang").await;
    assert_eq!(
        (hang["status"].as_str(), hang["attempts"].as_u64()),
        (Some("failed"), Some(2))
    );
    let detail = json(&broker.cli_ok(&[
        "--json",
        "subscriptions",
        "delivery",
        hang["id"].as_str().unwrap(),
    ]));
    let attempts = detail["attempt_list"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    for attempt in attempts {
        assert!(attempt["response_status"].is_null(), "{attempt}");
        assert!(
            attempt["error"].as_str().unwrap().contains("timed out"),
            "{attempt}"
        );
        let ms = attempt["duration_ms"].as_u64().unwrap();
        assert!((250..2000).contains(&ms), "took {ms} ms");
    }

    // Refused connections are retried; the endpoint comes up and gets it.
    wait_until("refused attempts", || {
        let list = json(&broker.cli_ok(&["--json", "subscriptions", "deliveries", "late"]));
        list[0]["attempts"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    let late_receiver = Receiver::default();
    let address = late_url
        .trim_start_matches("http://")
        .trim_end_matches("/late");
    late_receiver.serve(std::net::TcpListener::bind(address).unwrap());
    let delivered = settled_delivery(&broker, "late").await;
    assert_eq!(delivered["status"], "completed");
    assert_eq!(late_receiver.delivered().len(), 1);
    let detail = json(&broker.cli_ok(&[
        "--json",
        "subscriptions",
        "delivery",
        delivered["id"].as_str().unwrap(),
    ]));
    let attempts = detail["attempt_list"].as_array().unwrap();
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("connect"),
        "{detail}"
    );
    assert_eq!(attempts.last().unwrap()["response_status"], 200);
    assert_eq!(detail["data"], "{\"n\":0}");
    assert_eq!(detail["station"], "orders");

    // One attempt by id: the request we sent and the answer we got.
    let flaky = settled_delivery(&broker, "flaky-500").await;
    let first = json(&broker.cli_ok(&[
        "--json",
        "subscriptions",
        "attempt",
        &format!("{}.1", flaky["id"].as_str().unwrap()),
    ]));
    assert_eq!(first["response_status"], 500);
    assert_eq!(first["response_body"], "status 500");
    assert_eq!(first["request_line"], format!("POST {base}/flaky"));
    assert_eq!(first["request_headers"]["webhook-id"], flaky["id"]);
    assert!(
        first["request_headers"].get("webhook-signature").is_some(),
        "{first}"
    );
    let missing = broker.cli(&["subscriptions", "attempt", "nope.1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[actix_rt::test]
async fn binary_and_raw_formats_carry_the_payload_as_is() {
    let broker =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--allow-private-urls"]);
    let receiver = Receiver::default();
    let base = receiver.start();
    broker.cli_ok(&["stations", "create", "orders"]);
    let binary = subscribe(
        &broker,
        "binary",
        &format!("{base}/binary"),
        &["--format", "cloudevents-binary"],
    );
    let raw = subscribe(&broker, "raw", &format!("{base}/raw"), &["--format", "raw"]);
    let client = broker.client().await;
    produce_numbered(&client, 0..1).await;
    wait_until("both deliveries", || receiver.delivered().len() == 2).await;

    let seen = &receiver.seen_at("/binary")[0];
    assert_eq!(seen.body, "{\"n\":0}");
    assert!(verify(&binary, seen));
    assert!(
        !verify(&raw, seen),
        "another subscription's secret does not verify"
    );
    let h = &seen.headers;
    assert_eq!(h["ce-specversion"], "1.0");
    // The event's id is the message's (the same event for every
    // subscription); the webhook-id is this delivery's.
    assert_eq!(h["ce-id"].len(), 36, "{h:?}");
    assert_ne!(h["ce-id"], seen.id);
    assert_eq!(h["ce-source"], "/stations/orders");
    assert_eq!(h["ce-type"], "depot.message.published");
    assert_eq!(h["ce-depotoffset"], "0");
    assert!(h.contains_key("ce-time"), "{h:?}");
    assert_eq!(h["content-type"], "application/json");

    let seen = &receiver.seen_at("/raw")[0];
    assert_eq!(seen.body, "{\"n\":0}");
    assert!(verify(&raw, seen));
    assert_eq!(seen.headers["content-type"], "application/json");
    assert!(!seen.headers.contains_key("ce-id"));
}

/// A free loopback port for a listener the broker opens itself.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn metrics(port: u16) -> String {
    let mut answer = awc::Client::default()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    String::from_utf8(answer.body().await.unwrap().to_vec()).unwrap()
}

#[actix_rt::test]
async fn a_failing_endpoint_opens_the_circuit_and_a_probe_closes_it() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let broker = TestBroker::start_with(
        Arc::new(TempDir::new().unwrap()),
        &[
            "--allow-private-urls",
            "--circuit-failures",
            "4",
            "--circuit-probe-after",
            "700ms",
            "--metrics-listen",
            &listen,
        ],
    );
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::SeqCst);
    let url = format!("{}/down", receiver.start());
    broker.cli_ok(&["stations", "create", "orders"]);
    subscribe(
        &broker,
        "fragile",
        &url,
        &[
            "--retry-schedule",
            "0s,20ms",
            "--max-attempts",
            "1000",
            "--concurrency",
            "2",
        ],
    );
    let client = broker.client().await;
    produce_numbered(&client, 0..5).await;
    let info = || json(&broker.cli_ok(&["--json", "subscriptions", "info", "fragile"]));
    wait_until("the circuit to open", || info()["circuit"] == "open").await;

    // Open: nothing is sent until the probe is due.
    let opened = receiver.seen().len();
    assert!(
        (4..=6).contains(&opened),
        "{opened} attempts before opening"
    );
    actix_rt::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        receiver.seen().len(),
        opened,
        "an open circuit sent attempts"
    );
    let text = metrics(port).await;
    let series = "{station=\"orders\",subscription=\"fragile\"}";
    assert!(
        text.contains(&format!("depot_broker_delivery_circuit_state{series} 2")),
        "{text}"
    );
    assert!(
        text.contains(&format!("depot_broker_delivery_pending{series} 5")),
        "{text}"
    );

    // The probe fails: one attempt, and the circuit opens again.
    wait_until("a probe", || receiver.seen().len() == opened + 1).await;
    let probed = Instant::now();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.seen().len(), opened + 1, "one probe at a time");
    assert_eq!(info()["circuit"], "open");

    // The endpoint recovers: the next probe closes it and everything goes.
    receiver.down.store(false, Ordering::SeqCst);
    wait_until("all delivered", || receiver.delivered().len() == 5).await;
    assert!(
        probed.elapsed() >= Duration::from_millis(1000),
        "the second wait doubled"
    );
    wait_until("the circuit to close", || info()["circuit"] == "closed").await;
    let info = info();
    assert_eq!(info["delivered"], 5);
    assert_eq!(info["pending"], 0);
    assert!(info["retried"].as_u64().unwrap() >= 5, "{info}");
    let text = metrics(port).await;
    assert!(
        text.contains(&format!("depot_broker_delivery_delivered_total{series} 5")),
        "{text}"
    );
    assert!(
        text.contains("depot_broker_delivery_attempt_duration_seconds_bucket"),
        "{text}"
    );
}

#[actix_rt::test]
async fn updates_apply_to_the_next_attempt_and_the_max_rate_holds() {
    let broker =
        TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &["--allow-private-urls"]);
    let receiver = Receiver::default();
    let base = receiver.start();
    broker.cli_ok(&["stations", "create", "orders"]);
    subscribe(
        &broker,
        "moving",
        &format!("{base}/old"),
        &["--max-rate", "10"],
    );
    let client = broker.client().await;
    let started = Instant::now();
    produce_numbered(&client, 0..10).await;
    wait_until("10 deliveries", || receiver.delivered().len() == 10).await;
    // 10 per second: the tenth starts about 0.9 s after the first.
    let seen = receiver.seen();
    let spread = seen[9].at - seen[0].at;
    assert!(spread >= Duration::from_millis(750), "10 took {spread:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let updated = json(&broker.cli_ok(&[
        "--json",
        "subscriptions",
        "update",
        "moving",
        "--name",
        "moved",
        "--url",
        &format!("{base}/new"),
        "--secret",
        secret,
        "--max-rate",
        "0",
        "--filter",
        "kind=paid",
    ]));
    assert_eq!(updated["name"], "moved");
    assert!(updated["max_rate"].is_null(), "{updated}");
    assert_eq!(updated["filter"]["kind"], "paid");
    // Only the message with the header goes, to the new URL, signed anew.
    let mut paid = crate::harness::json_message("{\"n\":10}");
    paid.headers.push(depot_schemas::wire::Header {
        key: "kind".into(),
        value: "paid".into(),
    });
    client.produce("orders", vec![paid]).await.unwrap();
    produce_numbered(&client, 11..12).await;
    wait_until("the paid message", || receiver.seen_at("/new").len() == 1).await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let new = receiver.seen_at("/new");
    assert_eq!(new.len(), 1, "the filter let another through");
    assert!(verify(secret, &new[0]));
    assert_eq!(receiver.seen_at("/old").len(), 10);
    let bad = broker.cli(&[
        "subscriptions",
        "update",
        "moved",
        "--url",
        "ftp://example.com/",
    ]);
    assert!(!bad.status.success(), "an update passes the same rules");
    let bad = broker.cli(&["subscriptions", "update", "moved", "--max-attempts", "0"]);
    assert!(!bad.status.success());
    assert!(
        broker
            .cli(&["subscriptions", "info", "moving"])
            .status
            .code()
            != Some(0)
    );
}

#[actix_rt::test]
async fn finished_delivery_records_expire_and_pending_ones_stay() {
    let broker = TestBroker::start_with(
        Arc::new(TempDir::new().unwrap()),
        &["--allow-private-urls", "--delivery-retention", "1s"],
    );
    let receiver = Receiver::default();
    let base = receiver.start();
    broker.cli_ok(&["stations", "create", "orders"]);
    subscribe(&broker, "done", &format!("{base}/ok"), &[]);
    receiver.down.store(true, Ordering::SeqCst);
    subscribe(
        &broker,
        "stuck",
        &format!("{base}/down"),
        &["--retry-schedule", "0s,1h"],
    );
    let client = broker.client().await;
    produce_numbered(&client, 0..3).await;
    let listed = |name: &str| {
        json(&broker.cli_ok(&["--json", "subscriptions", "deliveries", name]))
            .as_array()
            .unwrap()
            .len()
    };
    wait_until("3 deliveries", || receiver.seen_at("/ok").len() == 3).await;
    wait_until("the records to expire", || listed("done") == 0).await;
    assert_eq!(listed("stuck"), 3, "pending deliveries are kept");
    let info = json(&broker.cli_ok(&["--json", "subscriptions", "info", "done"]));
    assert_eq!(info["delivered"], 3, "counters outlive the records");
}

#[actix_rt::test]
async fn host_lists_allow_a_named_internal_service_and_deny_others() {
    let broker = TestBroker::start_with(
        Arc::new(TempDir::new().unwrap()),
        &[
            "--allow-hosts",
            "localhost",
            "--deny-hosts",
            "evil.example.com",
        ],
    );
    let receiver = Receiver::default();
    let base = receiver.start();
    let port = base.rsplit(':').next().unwrap();
    broker.cli_ok(&["stations", "create", "orders"]);
    // An allowed name reaches loopback; the address itself stays denied.
    subscribe(
        &broker,
        "internal",
        &format!("http://localhost:{port}/ok"),
        &[],
    );
    let by_address = broker.cli(&[
        "subscriptions",
        "create",
        "raw-ip",
        "--station",
        "orders",
        "--url",
        &format!("{base}/ok"),
    ]);
    assert!(!by_address.status.success());
    let denied = broker.cli(&[
        "subscriptions",
        "create",
        "evil",
        "--station",
        "orders",
        "--url",
        "https://evil.example.com/x",
    ]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("denied"));
    let client = broker.client().await;
    produce_numbered(&client, 0..2).await;
    wait_until("2 deliveries", || receiver.delivered().len() == 2).await;
}
