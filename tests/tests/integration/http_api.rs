//! The HTTP API against real `depot-proxy` processes: the seed's curl
//! examples, token attacks, permissions, limits, and bad input.

use base64::Engine as _;
use depot_schemas::wire::{CreateUser, Permissions, StationSettings, UpdateUser};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::{
    harness::{ROOT_PASSWORD, TestBroker, fetch_all},
    proxy_harness::{
        TestProxy, get, get_text, login, metric_value, post, preflight, preflight_with, send,
    },
};

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// A user who may produce anywhere and create stations (secrets to add).
fn producer_anywhere(name: &str) -> CreateUser {
    CreateUser {
        name: name.into(),
        permissions: Some(Permissions {
            produce: vec!["*".into()],
            create_stations: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

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

fn forged(claims: serde_json::Value, key: &[u8], algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[actix_rt::test]
async fn token_attacks_get_401() {
    let proxy = TestProxy::embedded(&[]);
    let (jwt, refresh) = login(&proxy, "root", ROOT_PASSWORD).await;
    let key = proxy.broker_client().await.signing_key().await.unwrap().key;
    let claims = |typ: &str, exp: u64| json!({"sub": "root", "typ": typ, "iat": now(), "exp": exp, "jti": "x"});

    let unsigned = {
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(claims("access", now() + 600).to_string());
        format!("{header}.{payload}.")
    };
    let wrong_key = forged(
        claims("access", now() + 600),
        b"not the broker's key at all!!!!!",
        Algorithm::HS256,
    );
    let expired = forged(claims("access", now() - 5), &key, Algorithm::HS256);
    let other_algorithm = forged(claims("access", now() + 600), &key, Algorithm::HS512);
    let tampered = {
        let parts: Vec<&str> = jwt.split('.').collect();
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({"sub": "root", "typ": "access", "iat": now(), "exp": now() + 99999, "jti": "y"})
                .to_string(),
        );
        format!("{}.{payload}.{}", parts[0], parts[2])
    };

    let url = proxy.url("/stations/attacked/produce/single");
    for (what, token) in [
        ("alg none", unsigned.as_str()),
        ("wrong key", &wrong_key),
        ("expired", &expired),
        ("HS512", &other_algorithm),
        ("tampered", &tampered),
        ("refresh as access", &refresh),
    ] {
        let (name, value) = bearer(token);
        let answer = post(&url, &[(name, &value), JSON], "{}").await;
        assert_eq!(answer.status, 401, "{what}: {}", answer.body);
        assert_eq!(answer.body["success"], false, "{what}");
    }
    let missing = post(&url, &[JSON], "{}").await;
    assert_eq!(missing.status, 401);

    // An access token is no refresh token.
    let (name, value) = bearer(&jwt);
    assert_eq!(
        post(&proxy.url("/auth/refreshToken"), &[(name, &value)], "")
            .await
            .status,
        401
    );
    // A refresh token is single use (and may come in the body).
    let body = json!({ "jwt_refresh_token": refresh }).to_string();
    assert_eq!(
        post(&proxy.url("/auth/refreshToken"), &[JSON], body.clone())
            .await
            .status,
        200
    );
    let reused = post(&proxy.url("/auth/refreshToken"), &[JSON], body).await;
    assert_eq!(reused.status, 401);
    assert_eq!(reused.body["error"], "the refresh token was already used");
    // Requested lifetimes are capped (24 hours by default).
    let long = post(
        &proxy.url("/auth/authenticate"),
        &[JSON],
        json!({"username": "root", "password": ROOT_PASSWORD, "token_expiry_in_minutes": 100_000})
            .to_string(),
    )
    .await;
    assert_eq!(long.body["expires_in"], 24 * 3600 * 1000);
    // Wrong credentials.
    let wrong = post(
        &proxy.url("/auth/authenticate"),
        &[JSON],
        r#"{"username":"root","password":"no"}"#,
    )
    .await;
    assert_eq!(wrong.status, 401);

    // Browsers may pass the token in the query; no station was touched.
    let with_query = post(&format!("{url}?authorization={jwt}"), &[JSON], "{}").await;
    assert_eq!(with_query.body["offset"], 0);
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

/// Single produces of one user with several tokens at once share broker
/// calls; when one of the tokens' sessions was ended, only its requests
/// are refused, and only the others' messages are stored.
#[actix_rt::test]
async fn an_ended_session_is_refused_alone_among_its_users_concurrent_produces() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    let (ended, _) = producer_login(&root, &proxy, "many").await;
    let (also_ended, _) = login(&proxy, "many", "many-password").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    root.end_sessions("many").await.unwrap();
    let (valid, _) = login(&proxy, "many", "many-password").await;

    let url = proxy.url("/stations/mixed/produce/single");
    let send = |jwt: &str, n: usize| {
        let (name, value) = bearer(jwt);
        let url = url.clone();
        async move {
            let answer = post(
                &url,
                &[(name, value.as_str()), JSON],
                format!("{{\"n\":{n}}}"),
            )
            .await;
            (n, answer)
        }
    };
    let answers = futures::future::join_all((0..150).map(|n| match n % 3 {
        0 => futures::future::Either::Left(send(&valid, n)),
        1 => futures::future::Either::Right(send(&ended, n)),
        _ => futures::future::Either::Right(send(&also_ended, n)),
    }))
    .await;
    let mut stored_ns = Vec::new();
    for (n, answer) in &answers {
        if n % 3 == 0 {
            assert_eq!(answer.status, 200, "request {n}: {}", answer.body);
            stored_ns.push(*n as u64);
        } else {
            assert_eq!(answer.status, 401, "request {n}: {}", answer.body);
        }
    }
    let stored = fetch_all(&root, "mixed", 0).await;
    let mut got: Vec<u64> = stored
        .iter()
        .map(|m| {
            let payload: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            payload["n"].as_u64().unwrap()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, stored_ns);
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

/// The proxy remembers verified tokens; a remembered token still expires.
#[actix_rt::test]
async fn an_accepted_token_is_refused_once_it_expires() {
    let proxy = TestProxy::embedded(&[]);
    let key = proxy.broker_client().await.signing_key().await.unwrap().key;
    let exp = now() + 2;
    let claims = json!({"sub": "root", "typ": "access", "iat": now(), "exp": exp, "jti": "short"});
    let token = forged(claims, &key, Algorithm::HS256);
    let (name, value) = bearer(&token);
    let url = proxy.url("/stations/short-lived/produce/single");
    let accepted = post(&url, &[(name, &value), JSON], "{}").await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    // Twice: the second time from the proxy's memory of verified tokens.
    let again = post(&url, &[(name, &value), JSON], "{}").await;
    assert_eq!(again.status, 200, "{}", again.body);
    while now() <= exp {
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expired = post(&url, &[(name, &value), JSON], "{}").await;
    assert_eq!(expired.status, 401, "{}", expired.body);
    assert_eq!(expired.body["error"], "the token has expired");
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
async fn a_deleted_users_tokens_stop_working() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    root.create_user(CreateUser {
        password: "leaver-password".into(),
        ..producer_anywhere("leaver")
    })
    .await
    .unwrap();
    let (jwt, refresh) = login(&proxy, "leaver", "leaver-password").await;
    root.delete_user("leaver").await.unwrap();

    let (name, value) = bearer(&jwt);
    let url = proxy.url("/stations/gone/produce/single");
    assert_eq!(post(&url, &[(name, &value), JSON], "{}").await.status, 403);
    let (name, value) = bearer(&refresh);
    let refreshed = post(&proxy.url("/auth/refreshToken"), &[(name, &value)], "").await;
    assert_eq!(refreshed.status, 401, "{}", refreshed.body);
}

/// A changed password ends the sessions opened with the old one: their
/// refresh tokens are refused (a stolen one cannot be rotated forever);
/// a login with the new password refreshes as usual. Remote proxies ask
/// the same broker, so this holds for them too.
#[actix_rt::test]
async fn a_password_change_revokes_earlier_refresh_tokens() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    root.create_user(CreateUser {
        password: "old-password".into(),
        ..producer_anywhere("mover")
    })
    .await
    .unwrap();
    let (_, old_refresh) = login(&proxy, "mover", "old-password").await;
    let refresh = |token: String| {
        let url = proxy.url("/auth/refreshToken");
        async move {
            let (name, value) = bearer(&token);
            post(&url, &[(name, value.as_str())], "").await
        }
    };
    // A change of permissions only leaves sessions alone.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    root.update_user(UpdateUser {
        name: "mover".into(),
        permissions: Some(Permissions {
            produce: vec!["moves.*".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let still = refresh(old_refresh).await;
    assert_eq!(still.status, 200, "{}", still.body);
    let old_refresh = still.body["jwt_refresh_token"].as_str().unwrap().to_owned();

    change_password_later(&root, "mover", "new-password").await;
    let refused = refresh(old_refresh).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("authenticate again"), "{error}");

    let (_, new_refresh) = login(&proxy, "mover", "new-password").await;
    assert_eq!(refresh(new_refresh).await.status, 200);
}

#[actix_rt::test]
async fn a_password_change_ends_earlier_access_tokens_at_once_embedded() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    access_tokens_end_with_a_password_change(&proxy, &root).await;
}

#[actix_rt::test]
async fn a_password_change_ends_earlier_access_tokens_at_once_remote() {
    let broker = TestBroker::start();
    let proxy = TestProxy::remote(broker.addr, &[]);
    let root = broker.client().await;
    access_tokens_end_with_a_password_change(&proxy, &root).await;
}

/// An access token issued before its user's password changed is refused on
/// every kind of route from then on (not when it expires); a new login
/// works, and nothing the old token sent after the change is stored.
async fn access_tokens_end_with_a_password_change(
    proxy: &TestProxy,
    root: &depot_broker::client::BrokerClient,
) {
    root.create_user(CreateUser {
        password: "old-password".into(),
        permissions: Some(Permissions {
            produce: vec!["*".into()],
            consume: vec!["*".into()],
            create_stations: true,
            ..Default::default()
        }),
        ..producer_anywhere("mover")
    })
    .await
    .unwrap();
    let (old_jwt, _) = login(proxy, "mover", "old-password").await;
    let single = |jwt: String, body: &'static str| {
        let url = proxy.url("/stations/moves/produce/single");
        async move {
            let (name, value) = bearer(&jwt);
            post(&url, &[(name, value.as_str()), JSON], body).await
        }
    };
    let first = single(old_jwt.clone(), r#"{"n":0}"#).await;
    assert_eq!(first.status, 200, "{}", first.body);

    change_password_later(root, "mover", "new-password").await;

    let refused = single(old_jwt.clone(), r#"{"n":"late"}"#).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.body["success"], false);
    let error = refused.body["error"].as_str().unwrap();
    assert!(error.contains("authenticate again"), "{error}");
    let (name, value) = bearer(&old_jwt);
    let batch = post(
        &proxy.url("/stations/moves/produce/batch"),
        &[(name, value.as_str()), JSON],
        r#"[{"n":"late"}]"#,
    )
    .await;
    assert_eq!(batch.status, 401, "{}", batch.body);
    let described = send("GET", &proxy.url("/stations/moves"), &old_jwt, None).await;
    assert_eq!(described.status, 401, "{}", described.body);

    let (new_jwt, _) = login(proxy, "mover", "new-password").await;
    let second = single(new_jwt.clone(), r#"{"n":1}"#).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let described = send("GET", &proxy.url("/stations/moves"), &new_jwt, None).await;
    assert_eq!(described.status, 200, "{}", described.body);

    let stored = fetch_all(root, "moves", 0).await;
    let payloads: Vec<&[u8]> = stored.iter().map(|m| m.payload.as_ref()).collect();
    assert_eq!(payloads, [&br#"{"n":0}"#[..], &br#"{"n":1}"#[..]]);
}

#[actix_rt::test]
async fn logout_ends_every_session_of_the_user_on_every_proxy() {
    let broker = TestBroker::start();
    let proxy_a = TestProxy::remote(broker.addr, &[]);
    let proxy_b = TestProxy::remote(broker.addr, &[]);
    let root = broker.client().await;
    root.create_user(CreateUser {
        password: "leaver-password".into(),
        ..producer_anywhere("leaver")
    })
    .await
    .unwrap();
    // Two devices, each with its pair, one with a socket open too.
    let (phone, phone_refresh) = login(&proxy_a, "leaver", "leaver-password").await;
    let (laptop, _) = login(&proxy_b, "leaver", "leaver-password").await;
    let (other, _) = producer_login(&root, &proxy_a, "stayer").await;
    let mut socket = crate::websockets::WsClient::authorized(&proxy_a, &phone).await;
    let single = |proxy: &TestProxy, jwt: &str| {
        let url = proxy.url("/stations/devices/produce/single");
        let (name, value) = bearer(jwt);
        async move {
            post(&url, &[(name, value.as_str()), JSON], "{}")
                .await
                .status
        }
    };
    assert_eq!(single(&proxy_a, &phone).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let (name, value) = bearer(&laptop);
    let out = post(&proxy_b.url("/auth/logout"), &[(name, value.as_str())], "").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.body, json!({"success": true, "error": null}));

    assert_eq!(single(&proxy_a, &phone).await, 401);
    assert_eq!(single(&proxy_b, &laptop).await, 401);
    let (name, value) = bearer(&phone_refresh);
    let refreshed = post(
        &proxy_b.url("/auth/refreshToken"),
        &[(name, value.as_str())],
        "",
    )
    .await;
    assert_eq!(refreshed.status, 401, "{}", refreshed.body);
    let reason = socket.closed().await;
    assert!(reason.contains("the session is over"), "{reason}");
    // Another user is untouched, and the leaver may log in again.
    assert_eq!(single(&proxy_b, &other).await, 200);
    let (again, _) = login(&proxy_a, "leaver", "leaver-password").await;
    assert_eq!(single(&proxy_b, &again).await, 200);

    // An administrator ends anyone's sessions; nobody else may.
    let denied = broker.cli(&[
        "--user",
        "leaver",
        "--password",
        "leaver-password",
        "users",
        "end-sessions",
        "stayer",
    ]);
    assert!(!denied.status.success());
    let error = String::from_utf8_lossy(&denied.stderr);
    assert!(error.contains("permission denied"), "{error}");
    assert!(
        broker
            .cli_ok(&["users", "end-sessions", "stayer"])
            .contains("ended every session of stayer")
    );
    assert_eq!(single(&proxy_a, &other).await, 401);
    assert_eq!(
        single(&proxy_a, &again).await,
        200,
        "the leaver's new session"
    );

    // The same over HTTP: not with another user's token, but with root's.
    let url = proxy_b.url("/users/leaver/end-sessions");
    let (stayer_again, _) = login(&proxy_a, "stayer", "stayer-password").await;
    let (name, value) = bearer(&stayer_again);
    let refused = post(&url, &[(name, value.as_str())], "").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let (admin, _) = login(&proxy_a, "root", ROOT_PASSWORD).await;
    let (name, value) = bearer(&admin);
    let ended = post(&url, &[(name, value.as_str())], "").await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_eq!(single(&proxy_a, &again).await, 401);
}

/// Creates `name` (password `<name>-password`, producing anywhere) through
/// `root` and logs it in on `proxy`.
async fn producer_login(
    root: &depot_broker::client::BrokerClient,
    proxy: &TestProxy,
    name: &str,
) -> (String, String) {
    let password = format!("{name}-password");
    root.create_user(CreateUser {
        password: password.clone(),
        ..producer_anywhere(name)
    })
    .await
    .unwrap();
    login(proxy, name, &password).await
}

/// Changes `user`'s password a little later than any token issued so far
/// (sessions end by the millisecond).
async fn change_password_later(
    root: &depot_broker::client::BrokerClient,
    user: &str,
    password: &str,
) {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    root.update_user(UpdateUser {
        name: user.into(),
        password: Some(password.into()),
        ..Default::default()
    })
    .await
    .unwrap();
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
