//! The HTTP API against real `depot-proxy` processes: the seed's curl
//! examples, produce forms, permissions, limits, bad input, health,
//! metrics and CORS (tokens and sessions: `http_sessions`).

use base64::Engine as _;
use depot_schemas::wire::{CreateUser, Permissions, StationSettings};
use serde_json::json;

use crate::{
    harness::{ROOT_PASSWORD, fetch_all},
    proxy_harness::{
        JSON, TestProxy, bearer, get, get_text, login, metric_value, post, preflight,
        preflight_with, producer_anywhere,
    },
};

#[actix_rt::test]
async fn the_seed_curl_examples_work_as_written() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    root.create_user(CreateUser {
        connection_token: "memphis".into(),
        ..producer_anywhere("app")
    })
    .await
    .unwrap();

    // Authenticate, word for word as in the seed (root with a connection
    // token), then as an application user.
    let seed = post(
        &proxy.url("/auth/authenticate"),
        &[JSON],
        "{\n\"username\": \"root\",\n\"connection_token\": \"memphis\"\n}",
    )
    .await;
    assert_eq!(seed.status, 200, "{}", seed.body);
    let auth = post(
        &proxy.url("/auth/authenticate"),
        &[JSON],
        r#"{"username": "app", "connection_token": "memphis"}"#,
    )
    .await;
    assert_eq!(auth.status, 200, "{}", auth.body);
    assert_eq!(auth.body["expires_in"], 900_000, "15 minutes, in ms");
    assert_eq!(
        auth.body["refresh_token_expires_in"], 18_000_000,
        "5 hours, in ms"
    );
    let jwt = auth.body["jwt"].as_str().unwrap().to_owned();
    let refresh = auth.body["jwt_refresh_token"].as_str().unwrap().to_owned();

    // Refresh with the refresh token as a bearer and an empty body.
    let (name, value) = bearer(&refresh);
    let refreshed = post(&proxy.url("/auth/refreshToken"), &[(name, &value)], "").await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.body["expires_in"], 900_000);
    assert!(
        refreshed.body["jwt"].as_str().unwrap() != jwt,
        "a new token"
    );

    // Produce a single message in each supported content type.
    let (name, value) = bearer(&jwt);
    let url = proxy.url("/stations/seed/produce/single");
    let single = post(
        &url,
        &[(name, &value), JSON],
        r#"{"message": "New Message"}"#,
    )
    .await;
    assert_eq!(single.status, 200);
    assert_eq!(
        single.body,
        json!({"error": null, "success": true, "offset": 0, "duplicate": false})
    );
    let text = post(
        &url,
        &[(name, &value), ("Content-Type", "text/plain")],
        "plain words",
    )
    .await;
    assert_eq!(text.body["offset"], 1);
    let protobuf_bytes: &[u8] = &[0x08, 0x96, 0x01];
    let protobuf = post(
        &url,
        &[(name, &value), ("Content-Type", "application/x-protobuf")],
        protobuf_bytes.to_vec(),
    )
    .await;
    assert_eq!(protobuf.body["offset"], 2);

    // Produce a batch.
    let batch = post(
        &proxy.url("/stations/seed/produce/batch"),
        &[(name, &value), JSON],
        "[\n{\"message\": \"x\"},\n{\"message\": \"y\"},\n{\"message\": \"z\"}\n]",
    )
    .await;
    assert_eq!(batch.status, 200);
    assert_eq!(
        batch.body,
        json!({"error": null, "success": true, "sent": 3})
    );

    let stored = fetch_all(&root, "seed", 0).await;
    let payloads: Vec<&[u8]> = stored.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(
        payloads,
        [
            &b"{\"message\": \"New Message\"}"[..],
            b"plain words",
            protobuf_bytes,
            b"{\"message\": \"x\"}",
            b"{\"message\": \"y\"}",
            b"{\"message\": \"z\"}",
        ]
    );
    assert_eq!(stored[1].content_type, "text/plain");
    assert_eq!(stored[2].content_type, "application/x-protobuf");
    assert!(stored.iter().all(|m| m.producer == "app"));
    assert!(
        stored[0].headers.iter().all(|h| h.key != "authorization"),
        "credentials never become message headers"
    );
}

#[actix_rt::test]
async fn headers_msg_id_envelopes_and_duplicates() {
    let proxy = TestProxy::embedded(&[]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&jwt);
    let url = proxy.url("/stations/orders/produce/single");
    let headers = [
        (name, value.as_str()),
        JSON,
        ("MSG-ID", "order-7"),
        ("x-trace", "t1"),
        ("Cookie", "s=1"),
    ];
    let first = post(&url, &headers, "{}").await;
    let again = post(&url, &headers, "{}").await;
    assert_eq!(first.body["duplicate"], false);
    assert_eq!(
        again.body,
        json!({"error": null, "success": true, "offset": 0, "duplicate": true})
    );

    let envelopes = json!([
        {"payload": {"n": 1}, "headers": {"kind": "a"}, "msg_id": "e-1"},
        {"payload": "text body", "content_type": "text/plain"},
        {"payload": base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3]), "content_type": "application/x-protobuf"},
        {"headers": {"no": "payload"}},
        {"payload": {"n": 1}, "msg_id": "e-1"}
    ]);
    let batch = post(
        &proxy.url("/stations/orders/produce/batch?envelope=true"),
        &[(name, &value), JSON],
        envelopes.to_string(),
    )
    .await;
    assert_eq!(batch.status, 400, "{}", batch.body);
    assert_eq!(batch.body["sent"], 4, "the duplicate counts as sent");
    assert_eq!(batch.body["fail"], 1);
    assert!(
        batch.body["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("message 3: "),
        "{}",
        batch.body
    );

    let root = proxy.broker_client().await;
    let stored = fetch_all(&root, "orders", 0).await;
    assert_eq!(stored.len(), 4);
    let header = |m: &depot_schemas::wire::StoredMessage, k: &str| {
        m.headers
            .iter()
            .find(|h| h.key == k)
            .map(|h| h.value.clone())
    };
    assert_eq!(stored[0].id, "order-7");
    assert_eq!(header(&stored[0], "x-trace").as_deref(), Some("t1"));
    assert_eq!(header(&stored[0], "cookie"), None);
    assert_eq!(header(&stored[1], "kind").as_deref(), Some("a"));
    assert_eq!(&stored[2].payload[..], b"text body");
    assert_eq!(&stored[3].payload[..], &[1, 2, 3]);
}

/// Concurrent single produces share broker calls (the proxy coalesces
/// them); each request still gets its own message's offset, duplicates
/// inside one call are found, and a refusal reaches every request.
#[actix_rt::test]
async fn concurrent_single_produces_share_calls_and_keep_their_own_outcomes() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    create_shop_user(&root).await;
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&jwt);
    let headers = [(name, value.as_str()), JSON];
    let url = proxy.url("/stations/crowd/produce/single");

    let answers =
        futures::future::join_all((0..200).map(|n| post(&url, &headers, format!("{{\"n\":{n}}}"))))
            .await;
    let mut offsets = Vec::new();
    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(answer.status, 200, "{}", answer.body);
        offsets.push((answer.body["offset"].as_u64().unwrap(), n));
    }
    let stored = fetch_all(&root, "crowd", 0).await;
    assert_eq!(stored.len(), 200);
    for (offset, n) in offsets {
        let payload: serde_json::Value =
            serde_json::from_slice(&stored[offset as usize].payload).unwrap();
        assert_eq!(payload["n"], n, "offset {offset} answered to request {n}");
    }
    let (_, metrics) = get_text(&proxy.url("/metrics")).await;
    let calls = metric_value(&metrics, "depot_proxy_broker_produce_calls_total");
    assert!(
        calls < 200,
        "200 concurrent produces took {calls} broker calls"
    );

    // The same msg-id twenty times at once: stored once.
    let with_id = [(name, value.as_str()), JSON, ("msg-id", "once")];
    let answers =
        futures::future::join_all((0..20).map(|_| post(&url, &with_id, r#"{"once":true}"#))).await;
    let firsts = answers.iter().filter(|a| a.body["duplicate"] == false);
    assert_eq!(firsts.count(), 1);
    assert!(answers.iter().all(|a| a.body["offset"] == 200));

    // A refusal of the whole call is every waiting request's.
    let (shop_jwt, _) = login(&proxy, "shop", "shop-password").await;
    let (name, value) = bearer(&shop_jwt);
    let shop_headers = [(name, value.as_str()), JSON];
    let refused_url = proxy.url("/stations/payments/produce/single");
    let answers =
        futures::future::join_all((0..20).map(|_| post(&refused_url, &shop_headers, "{}"))).await;
    assert!(answers.iter().all(|a| a.status == 403), "all refused");
}

/// `?content_type=` and `?msg_id=` stand for their headers (for clients
/// that cannot set them) and win over them; they are checked the same way.
#[actix_rt::test]
async fn the_query_string_may_carry_the_content_type_and_msg_id() {
    let proxy = TestProxy::embedded(&[]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let url = |query: &str| {
        proxy.url(&format!(
            "/stations/query/produce/single?authorization={jwt}&{query}"
        ))
    };
    let text = [("Content-Type", "text/plain;charset=UTF-8")];
    let first = post(
        &url("content_type=application/json&msg_id=q-1"),
        &text,
        r#"{"a":1}"#,
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = post(
        &url("content_type=application/json&msg_id=q-1"),
        &text,
        r#"{"a":1}"#,
    )
    .await;
    assert_eq!(again.body["duplicate"], true, "{}", again.body);
    let malformed = post(&url("content_type=application/json"), &text, "{nope").await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    let unknown = post(&url("content_type=image/png"), &text, "x").await;
    assert_eq!(unknown.status, 415, "{}", unknown.body);
    let batch = post(
        &proxy.url(&format!(
            "/stations/query/produce/batch?authorization={jwt}&content_type=application/json"
        )),
        &text,
        r#"[{"b":1},{"b":2}]"#,
    )
    .await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    assert_eq!(batch.body["sent"], 2);

    let root = proxy.broker_client().await;
    let stored = fetch_all(&root, "query", 0).await;
    assert_eq!(
        stored.len(),
        3,
        "the duplicate and the refusals stored nothing"
    );
    assert_eq!(stored[0].id, "q-1");
    assert!(stored.iter().all(|m| m.content_type == "application/json"));
}

/// Batches of several MiB, one after another, all land. Each moves sled's
/// log over several segments in one go; the zeroes Depot writes ahead of
/// the log once waited, under a lock, for sled's IO pool, whose log writes
/// wait for that lock: the third such batch hung the broker for good.
#[actix_rt::test]
async fn batches_of_several_mib_in_a_row_all_land() {
    const BATCHES: usize = 6;
    const PER_BATCH: usize = 10_000;
    let proxy = TestProxy::embedded(&[]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&jwt);
    let headers = [(name, value.as_str()), JSON];
    let url = proxy.url("/stations/big/produce/batch");
    let message = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300));
    let batch = format!("[{}]", vec![message; PER_BATCH].join(","));
    for _ in 0..BATCHES {
        // The client gives up after 5 s.
        let answer = post(&url, &headers, batch.clone()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let root = proxy.broker_client().await;
    let info = root.describe_station("big").await.unwrap();
    assert_eq!(info.message_count, (BATCHES * PER_BATCH) as u64);
}

#[actix_rt::test]
async fn permissions_limits_and_bad_input_get_their_status() {
    let proxy = TestProxy::embedded(&["--max-single-body", "1KiB", "--auto-create", "false"]);
    let root = proxy.broker_client().await;
    root.create_station("orders.eu", StationSettings::default())
        .await
        .unwrap();
    root.create_station("payments", StationSettings::default())
        .await
        .unwrap();
    create_shop_user(&root).await;
    let (jwt, _) = login(&proxy, "shop", "shop-password").await;
    let (name, value) = bearer(&jwt);
    let auth = (name, value.as_str());
    let single = |station: &str| proxy.url(&format!("/stations/{station}/produce/single"));

    assert_eq!(
        post(&single("orders.eu"), &[auth, JSON], "{}").await.status,
        200
    );
    let denied = post(&single("payments"), &[auth, JSON], "{}").await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.body["error"],
        "permission denied: user 'shop' may not produce to station 'payments'"
    );
    assert_eq!(
        post(&single("orders.new"), &[auth, JSON], "{}")
            .await
            .status,
        404
    );
    // With auto-create off, not even root creates stations by producing.
    let (root_jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let root_auth = format!("Bearer {root_jwt}");
    let unknown = post(
        &single("nowhere"),
        &[("Authorization", &root_auth), JSON],
        "{}",
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["error"], "station not found: nowhere");
    assert_eq!(
        post(&single("Orders"), &[auth, JSON], "{}").await.status,
        400
    );

    let oversize = post(
        &single("orders.eu"),
        &[auth, JSON],
        format!("\"{}\"", "x".repeat(2000)),
    )
    .await;
    assert_eq!(oversize.status, 413);
    assert_eq!(
        oversize.body["error"],
        "the body exceeds the limit of 1024 bytes"
    );
    let malformed = post(&single("orders.eu"), &[auth, JSON], "{\n  \"a\": ,\n}").await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.body["error"]
            .as_str()
            .unwrap()
            .contains("line 2 column"),
        "{}",
        malformed.body
    );
    let wrong_type = post(
        &single("orders.eu"),
        &[auth, ("Content-Type", "application/xml")],
        "<a/>",
    )
    .await;
    assert_eq!(wrong_type.status, 415);
    let not_utf8 = post(
        &single("orders.eu"),
        &[auth, ("Content-Type", "text/plain")],
        vec![0xff, 0xfe],
    )
    .await;
    assert_eq!(not_utf8.status, 400);
    let batch_url = proxy.url("/stations/orders.eu/produce/batch");
    assert_eq!(
        post(&batch_url, &[auth, JSON], "{\"not\": \"an array\"}")
            .await
            .status,
        400
    );
    assert_eq!(
        post(&batch_url, &[auth, ("Content-Type", "text/plain")], "[]")
            .await
            .status,
        415
    );

    let stored = fetch_all(&root, "orders.eu", 0).await;
    assert_eq!(stored.len(), 1, "only the one good message is stored");
    assert!(fetch_all(&root, "payments", 0).await.is_empty());
}

#[actix_rt::test]
async fn status_health_metrics_and_cors() {
    let proxy = TestProxy::embedded(&["--cors-origin", "http://app.example"]);
    assert_eq!(
        get(&proxy.url("/monitoring/status")).await.body,
        json!({"status": "ok"})
    );
    assert_eq!(get(&proxy.url("/health/liveness")).await.status, 200);
    assert_eq!(get(&proxy.url("/health/readiness")).await.status, 200);

    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&jwt);
    let url = proxy.url("/stations/metered/produce/batch");
    post(&url, &[(name, &value), JSON], "[1, 2, 3]").await;
    let (status, metrics) = get_text(&proxy.url("/metrics")).await;
    assert_eq!(status, 200);
    for expected in [
        "depot_proxy_messages_produced_total 3",
        r#"depot_proxy_http_requests_total{route="/stations/{station}/produce/batch",status="200"} 1"#,
        r#"depot_proxy_http_requests_total{route="/auth/authenticate",status="200"} 1"#,
        r#"depot_proxy_broker_round_trip_seconds_count{operation="produce"} 1"#,
        "depot_proxy_http_request_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in:\n{metrics}"
        );
    }
    // The acknowledged batch waited for a flush, which the broker timed.
    let flushes = metric_value(&metrics, "depot_broker_flush_seconds_count");
    assert!(flushes >= 1, "the produce was flushed: {flushes} flushes");

    let (status, allowed) = preflight(&url, "http://app.example").await;
    assert_eq!(
        (status, allowed.as_deref()),
        (200, Some("http://app.example"))
    );
    let (_, allowed) = preflight(&url, "http://evil.example").await;
    assert_eq!(allowed, None, "only configured origins");
    // A browser may send headers of its own: they become message headers.
    let (status, _, headers) = preflight_with(
        &url,
        "http://app.example",
        "authorization, content-type, content-encoding, msg-id, x-page",
    )
    .await;
    assert_eq!(status, 200);
    let headers = headers.unwrap_or_default().to_ascii_lowercase();
    for wanted in ["content-encoding", "msg-id", "x-page"] {
        assert!(headers.contains(wanted), "{wanted} not allowed: {headers}");
    }
}

#[actix_rt::test]
async fn an_embedded_broker_with_workers_of_its_own_serves_http_and_the_wire() {
    let proxy = TestProxy::embedded(&["--broker-workers", "1"]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&jwt);
    let url = proxy.url("/stations/own-threads/produce/single");
    for n in 0..3 {
        let produced = post(
            &url,
            &[(name, value.as_str()), JSON],
            format!("{{\"n\":{n}}}"),
        )
        .await;
        assert_eq!(produced.status, 200, "{}", produced.body);
        assert_eq!(produced.body["offset"], n);
    }
    let root = proxy.broker_client().await;
    let stored = fetch_all(&root, "own-threads", 0).await;
    let offsets: Vec<u64> = stored.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [0, 1, 2]);
}

/// `shop`, password `shop-password`, which may produce to `orders.*` only.
async fn create_shop_user(root: &depot_broker::client::BrokerClient) {
    root.create_user(CreateUser {
        name: "shop".into(),
        password: "shop-password".into(),
        permissions: Some(Permissions {
            produce: vec!["orders.*".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
}

/// Logins beyond what the password thread has room for are refused at once
/// with 429, not queued behind a flood; the proxy logs in again once it
/// drains.
#[actix_rt::test]
async fn a_login_flood_is_refused_with_429_not_queued() {
    let proxy = TestProxy::embedded(&["--max-pending-logins", "2"]);
    let url = proxy.url("/auth/authenticate");
    let body = json!({"username": "root", "password": ROOT_PASSWORD}).to_string();
    let logins = (0..40).map(|_| post(&url, &[JSON], body.clone()));
    let answers = futures::future::join_all(logins).await;
    let refused: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    let accepted = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(refused.len() + accepted, 40, "only 200 or 429");
    // Exact counts depend on how fast the 40 arrive; both kinds must show.
    assert!(accepted >= 1 && !refused.is_empty(), "{accepted} accepted");
    assert_eq!(
        refused[0].body,
        json!({"success": false, "error": "too many logins in progress (2 waiting); try again shortly"})
    );
    let (_, metrics) = get_text(&proxy.url("/metrics")).await;
    let counted = metric_value(
        &metrics,
        r#"depot_broker_limit_refusals_total{limit="max_pending_logins"}"#,
    );
    assert_eq!(counted, refused.len() as u64, "each refusal counted");
    login(&proxy, "root", ROOT_PASSWORD).await;
}

/// Over HTTP, a station beyond `--max-stations` is a 429 naming the flag,
/// counted in the metrics.
#[actix_rt::test]
async fn stations_beyond_the_limit_get_429_over_http() {
    let proxy = TestProxy::embedded(&["--max-stations", "1"]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&jwt);
    let headers = [(name, value.as_str()), JSON];
    let first = post(&proxy.url("/stations/first/produce/single"), &headers, "1").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = post(&proxy.url("/stations/second/produce/single"), &headers, "2").await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.body["success"], false);
    let error = second.body["error"].as_str().unwrap();
    assert!(error.contains("--max-stations"), "{error}");
    let (_, metrics) = get_text(&proxy.url("/metrics")).await;
    let counted = metric_value(
        &metrics,
        r#"depot_broker_limit_refusals_total{limit="max_stations"}"#,
    );
    assert_eq!(counted, 1);
}
