//! The relay of seed 000 end to end, through a real proxy to real
//! receivers: a token from `/getToken`, then each of the three cases
//! (2xx: processed; 4xx: not retried, a dead letter and an alert; refused,
//! 5xx: queued and retried until it arrives), the HTML `GET /receive`, the
//! destination policy and the relay permission.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::{
    harness::ROOT_PASSWORD,
    proxy_harness::{Answer, TestProxy, get_text, login, post, producer_user, send},
    webhook_receiver::{Receiver, wait_until},
};

/// `POST /receive` as the seed sends it: the bare token in Authorization.
async fn receive(proxy: &TestProxy, token: &str, body: Value) -> Answer {
    let headers = [
        ("Authorization", token),
        ("Content-Type", "application/json"),
    ];
    post(&proxy.url("/receive"), &headers, body.to_string()).await
}

#[actix_rt::test]
async fn relayed_requests_arrive_are_rejected_or_queue_until_they_arrive() {
    let receiver = Receiver::default();
    let base = receiver.start();
    let alert_url = format!("{base}/alerts");
    let proxy = TestProxy::embedded(&["--allow-private-urls", "--alert-url", &alert_url]);

    // The seed's /getToken: the password in Authorization.
    let mut answer = awc::Client::default()
        .get(proxy.url("/getToken"))
        .insert_header(("Authorization", ROOT_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let token: Value = answer.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let wrong = awc::Client::default()
        .get(proxy.url("/getToken"))
        .insert_header(("Authorization", "not-the-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // 2xx: processed, with the destination's answer.
    let ok = receive(
        &proxy,
        &token,
        json!({"method": "POST", "url": format!("{base}/status/201"), "body": {"order": 7}}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["Status"], "The request was processed successfully.");
    assert_eq!(ok.body["Response"], "status 201");
    let got = &receiver.seen_at("/status/201")[0];
    assert_eq!(got.body, r#"{"order":7}"#);
    assert_eq!(got.headers["content-type"], "application/json");

    // Fast retries for the rest of the test (the relay is a subscription
    // like any other).
    let (admin, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let change = json!({"subscription": {"retry_schedule": "0s,200ms", "max_attempts": 50}});
    let path = proxy.url("/v1/subscriptions/depot.relay");
    let changed = send("PATCH", &path, &admin, Some(change)).await;
    assert_eq!(changed.status, 200, "{}", changed.body);

    // 4xx: not retried, a dead letter, an alert.
    let rejected = receive(
        &proxy,
        &token,
        json!({"method": "PUT", "url": format!("{base}/status/404"), "body": "plain text"}),
    )
    .await;
    assert_eq!(rejected.status, 404, "{}", rejected.body);
    assert_eq!(
        rejected.body["Status"],
        "The request contains incorrect syntax or can't be processed."
    );
    assert_eq!(rejected.body["Response"], "status 404");
    wait_until("the alert", || !receiver.seen_at("/alerts").is_empty()).await;
    let alert = &receiver.seen_at("/alerts")[0];
    let event: Value = serde_json::from_str(&alert.body).unwrap();
    assert_eq!(event["type"], "depot.relay.rejected");
    assert_eq!(event["status"], 404);
    assert_eq!(event["method"], "PUT");
    assert_eq!(event["delivery_id"], rejected.body["delivery_id"]);
    assert!(alert.headers.contains_key("webhook-signature"));
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        receiver.seen_at("/status/404").len(),
        1,
        "a 4xx is not retried"
    );
    let path = proxy.url("/v1/subscriptions/depot.relay/deliveries?status=failed");
    let dead = send("GET", &path, &admin, None).await;
    assert_eq!(
        dead.body["deliveries"][0]["id"],
        rejected.body["delivery_id"]
    );

    // Unreachable: queued, retried until the destination is up.
    let late = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let late_addr = late.local_addr().unwrap();
    drop(late);
    let queued = receive(
        &proxy,
        &token,
        json!({"method": "POST", "url": format!("http://{late_addr}/late"), "body": {"n": 1}}),
    )
    .await;
    assert_eq!(queued.status, 202, "{}", queued.body);
    assert_eq!(
        queued.body["Status"],
        "The request don't arrived, therefore it was added to the queue."
    );
    assert!(queued.body["Response"].is_null());
    assert!(queued.body["error"].as_str().unwrap().contains("connect"));
    let late_receiver = Receiver::default();
    late_receiver.serve(std::net::TcpListener::bind(late_addr).unwrap());
    wait_until("the queued request", || {
        late_receiver.delivered().len() == 1
    })
    .await;
    assert_eq!(late_receiver.delivered()[0].body, r#"{"n":1}"#);
    let id = queued.body["delivery_id"].as_str().unwrap();
    let record_path = proxy.url(&format!("/v1/deliveries/{id}"));
    let mut record = send("GET", &record_path, &admin, None).await;
    for _ in 0..100 {
        if record.body["status"] == "completed" {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        record = send("GET", &record_path, &admin, None).await;
    }
    assert_eq!(record.body["status"], "completed", "{}", record.body);
    assert!(
        record.body["delivery_attempts"].as_u64().unwrap() >= 2,
        "{}",
        record.body
    );
    assert_eq!(record.body["topic_id"], "depot.relay");

    // 5xx: queued too, and delivered once the destination recovers.
    receiver.down.store(true, Ordering::SeqCst);
    let busy = receive(
        &proxy,
        &token,
        json!({"method": "POST", "url": format!("{base}/down"), "body": "x"}),
    )
    .await;
    assert_eq!(busy.status, 202, "{}", busy.body);
    assert_eq!(busy.body["Response"], "status 503");
    receiver.down.store(false, Ordering::SeqCst);
    wait_until("the busy request", || {
        receiver.seen_at("/down").iter().any(|s| s.answered == 200)
    })
    .await;

    // GET /receive: the same from a query string, answered in HTML.
    let url = proxy.url(&format!(
        "/receive?url={base}/status/200&body=hello%20%3Cworld%3E&token={token}"
    ));
    let (status, page) = get_text(&url).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<h1>The request was processed successfully.</h1>"),
        "{page}"
    );
    assert!(page.contains("status 200"), "{page}");
    assert_eq!(receiver.seen_at("/status/200")[0].body, "hello <world>");
}

#[actix_rt::test]
async fn relays_need_a_token_the_permission_and_an_allowed_destination() {
    let receiver = Receiver::default();
    let base = receiver.start();
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let to = |url: &str| json!({"method": "POST", "url": url, "body": {}});

    let anonymous = post(
        &proxy.url("/relay"),
        &[("Content-Type", "application/json")],
        to("https://example.com/").to_string(),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.body["success"], false);

    // Loopback, private and link-local destinations are refused by default.
    for url in [
        format!("{base}/status/200"),
        "http://10.1.2.3/".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "file:///etc/passwd".into(),
    ] {
        let refused = receive(&proxy, &format!("Bearer {root}"), to(&url)).await;
        assert_eq!(refused.status, 400, "{url}: {}", refused.body);
        assert_eq!(refused.body["success"], false);
    }
    assert!(receiver.seen().is_empty(), "nothing reached the receiver");
    let bad_method = receive(
        &proxy,
        &root,
        json!({"method": "CONNECT", "url": "https://example.com/"}),
    )
    .await;
    assert_eq!(bad_method.status, 400);
    assert!(
        bad_method.body["error"]
            .as_str()
            .unwrap()
            .contains("CONNECT")
    );

    // A user without the right to produce to depot.relay may not relay.
    let ana = producer_user(&proxy, "ana", &["orders.*"]).await;
    let client = proxy.broker_client().await;
    let denied = receive(&proxy, &ana, to("https://example.com/")).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    // And nobody creates or deletes Depot's own stations.
    let made = client
        .create_station("depot.mine", Default::default())
        .await;
    assert!(made.is_err());
}

/// Depot's own station (`depot.relay`) is made and used whatever
/// `--max-stations` says, and does not count against it: a deployment at
/// its station limit still relays.
#[actix_rt::test]
async fn the_relay_works_at_the_station_limit() {
    let receiver = Receiver::default();
    let base = receiver.start();
    let proxy = TestProxy::embedded(&["--allow-private-urls", "--max-stations", "1"]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let bearer = format!("Bearer {jwt}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let first = post(&proxy.url("/stations/first/produce/single"), &headers, "1").await;
    assert_eq!(first.status, 200, "{}", first.body);

    let relayed = receive(
        &proxy,
        &bearer,
        json!({"method": "POST", "url": format!("{base}/status/200"), "body": "at the limit"}),
    )
    .await;
    assert_eq!(relayed.status, 200, "{}", relayed.body);
    assert_eq!(receiver.seen_at("/status/200").len(), 1);
    let second = post(&proxy.url("/stations/second/produce/single"), &headers, "2").await;
    assert_eq!(second.status, 429, "{}", second.body);
    // With `first` gone, the one place is free: `depot.relay` does not hold it.
    let root = proxy.broker_client().await;
    root.delete_station("first").await.unwrap();
    let second = post(&proxy.url("/stations/second/produce/single"), &headers, "2").await;
    assert_eq!(second.status, 200, "{}", second.body);
}
