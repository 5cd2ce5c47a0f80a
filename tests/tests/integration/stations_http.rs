//! Stations over HTTP: managed and read back with curl-like requests,
//! permissions per user, the same through a remote broker; and the JSON
//! answers of requests no route serves.

use awc::Client;
use serde_json::{Value, json};

use crate::{
    harness::{ROOT_PASSWORD, TestBroker},
    proxy_harness::{
        TestProxy, create_station, login, post, produce_single as produce, producer_user, send,
    },
};

/// One string field of each object of a JSON array.
fn field_of_each<'a>(array: &'a Value, field: &str) -> Vec<&'a str> {
    array
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

#[actix_rt::test]
async fn stations_are_created_changed_read_and_deleted_over_http() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;

    let created = send(
        "POST",
        &proxy.url("/stations"),
        &root,
        Some(json!({"name": "orders", "settings": {"retention_messages": 1000, "idempotency_window_ms": 60000}})),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let station = &created.body["station"];
    assert_eq!(station["name"], "orders");
    assert_eq!(station["settings"]["retention_messages"], 1000);
    assert_eq!(station["settings"]["idempotency_window_ms"], 60000);
    // Unset settings take the defaults: 7 days, 1 MiB.
    assert_eq!(
        station["settings"]["retention_age_ms"],
        7 * 24 * 3600 * 1000u64
    );
    assert_eq!(station["settings"]["max_message_bytes"], 1024 * 1024);
    assert_eq!(station["message_count"], 0);
    assert_eq!(station["last_offset"], Value::Null);

    let again = send(
        "POST",
        &proxy.url("/stations"),
        &root,
        Some(json!({"name": "orders"})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["success"], false);
    let bad_name = send(
        "POST",
        &proxy.url("/stations"),
        &root,
        Some(json!({"name": "Orders!"})),
    )
    .await;
    assert_eq!(bad_name.status, 400);
    assert!(
        bad_name.body["error"]
            .as_str()
            .unwrap()
            .contains("^[a-z0-9][a-z0-9._-]{0,127}$"),
        "{}",
        bad_name.body
    );
    let bad_setting = send(
        "POST",
        &proxy.url("/stations"),
        &root,
        Some(json!({"name": "x", "settings": {"retention": 5}})),
    )
    .await;
    assert_eq!(bad_setting.status, 400);
    assert!(
        bad_setting.body["error"]
            .as_str()
            .unwrap()
            .contains("retention")
    );

    let changed = send(
        "PATCH",
        &proxy.url("/stations/orders"),
        &root,
        Some(json!({"settings": {"retention_age_ms": 3600000}})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        changed.body["station"]["settings"]["retention_age_ms"],
        3600000
    );
    // What was not given stays.
    assert_eq!(
        changed.body["station"]["settings"]["retention_messages"],
        1000
    );

    produce(
        &proxy,
        &root,
        "orders",
        &[("Content-Type", "application/json"), ("msg-id", "o-1")],
        r#"{"id":1}"#,
    )
    .await;
    produce(
        &proxy,
        &root,
        "orders",
        &[("Content-Type", "text/plain"), ("region", "eu")],
        "two",
    )
    .await;
    produce(
        &proxy,
        &root,
        "orders",
        &[("Content-Type", "application/json")],
        r#"[3]"#,
    )
    .await;

    let described = send("GET", &proxy.url("/stations/orders"), &root, None).await;
    assert_eq!(described.body["station"]["message_count"], 3);
    assert_eq!(described.body["station"]["last_offset"], 2);

    let fetched = send("GET", &proxy.url("/stations/orders/messages"), &root, None).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let messages = fetched.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["offset"], 0);
    assert_eq!(messages[0]["data"], json!({"id": 1}));
    // The producer's msg-id is the message's id.
    assert_eq!(messages[0]["message_id"], "o-1");
    assert_eq!(messages[1]["data"], "dHdv"); // "two"
    assert_eq!(messages[1]["encoding"], "base64");
    assert_eq!(messages[1]["headers"]["region"], "eu");
    assert_eq!(messages[2]["data"], json!([3]));
    assert_eq!(fetched.body["next_offset"], 3);
    assert_eq!(fetched.body["head_offset"], 3);

    let page = send(
        "GET",
        &proxy.url("/stations/orders/messages?from=1&limit=1"),
        &root,
        None,
    )
    .await;
    let messages = page.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["offset"], 1);
    assert_eq!(page.body["next_offset"], 2);
    let bad_query = send(
        "GET",
        &proxy.url("/stations/orders/messages?limit=many"),
        &root,
        None,
    )
    .await;
    assert_eq!(bad_query.status, 400);
    assert!(
        bad_query.body["error"].as_str().unwrap().contains("query"),
        "{}",
        bad_query.body
    );
    let unknown_parameter = send(
        "GET",
        &proxy.url("/stations/orders/messages?form=1"),
        &root,
        None,
    )
    .await;
    assert_eq!(unknown_parameter.status, 400);
    // A browser's token in the query is not an unknown parameter.
    let in_query = Client::default()
        .get(proxy.url(&format!(
            "/stations/orders/messages?from=2&authorization={root}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status().as_u16(), 200);

    let listed = send("GET", &proxy.url("/stations"), &root, None).await;
    let names = field_of_each(&listed.body["stations"], "name");
    assert!(names.contains(&"orders"), "{names:?}");

    let deleted = send("DELETE", &proxy.url("/stations/orders"), &root, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["success"], true);
    let gone = send("GET", &proxy.url("/stations/orders"), &root, None).await;
    assert_eq!(gone.status, 404);
    let gone = send("GET", &proxy.url("/stations/orders/messages"), &root, None).await;
    assert_eq!(gone.status, 404);
}

#[actix_rt::test]
async fn each_station_route_checks_the_users_rights() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    for name in ["orders.eu", "payments"] {
        create_station(&proxy, &root, name).await;
    }
    produce(
        &proxy,
        &root,
        "payments",
        &[("Content-Type", "application/json")],
        "{}",
    )
    .await;
    let clerk = producer_user(&proxy, "clerk", &["orders.*"]).await;

    let listed = send("GET", &proxy.url("/stations"), &clerk, None).await;
    let names = field_of_each(&listed.body["stations"], "name");
    assert_eq!(names, ["orders.eu"]);
    assert_eq!(
        send("GET", &proxy.url("/stations/orders.eu"), &clerk, None)
            .await
            .status,
        200
    );
    for (method, path, body) in [
        ("GET", "/stations/payments", None),
        ("GET", "/stations/payments/messages", None),
        // Producing is not consuming.
        ("GET", "/stations/orders.eu/messages", None),
        ("POST", "/stations", Some(json!({"name": "orders.us"}))),
        (
            "PATCH",
            "/stations/orders.eu",
            Some(json!({"settings": {"retention_messages": 1}})),
        ),
        ("DELETE", "/stations/orders.eu", None),
    ] {
        let answer = send(method, &proxy.url(path), &clerk, body).await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
        assert_eq!(answer.body["success"], false);
    }
    let anonymous = post(
        &proxy.url("/stations"),
        &[("Content-Type", "application/json")],
        r#"{"name":"x"}"#,
    )
    .await;
    assert_eq!(anonymous.status, 401);
    // Nothing the refusals touched changed.
    let payments = send("GET", &proxy.url("/stations/payments"), &root, None).await;
    assert_eq!(payments.body["station"]["message_count"], 1);
}

#[actix_rt::test]
async fn station_routes_work_through_a_remote_broker() {
    let broker = TestBroker::start();
    let proxy = TestProxy::remote(broker.addr, &[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    create_station(&proxy, &root, "events").await;
    produce(
        &proxy,
        &root,
        "events",
        &[("Content-Type", "application/json")],
        r#"{"n":1}"#,
    )
    .await;
    let fetched = send("GET", &proxy.url("/stations/events/messages"), &root, None).await;
    assert_eq!(fetched.body["messages"][0]["data"], json!({"n": 1}));
    let changed = send(
        "PATCH",
        &proxy.url("/stations/events"),
        &root,
        Some(json!({"settings": {"max_message_bytes": 2048}})),
    )
    .await;
    assert_eq!(
        changed.body["station"]["settings"]["max_message_bytes"],
        2048
    );
    assert_eq!(
        send("DELETE", &proxy.url("/stations/events"), &root, None)
            .await
            .status,
        200
    );
}

#[actix_rt::test]
async fn requests_no_route_serves_get_json_errors() {
    let proxy = TestProxy::embedded(&[]);
    let mut response = Client::default()
        .get(proxy.url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
    assert_eq!(body["success"], false);
    assert!(
        body["error"].as_str().unwrap().contains("GET /nope"),
        "{body}"
    );

    for (method, path, allow) in [
        ("PUT", "/stations/orders/produce/single", "POST"),
        ("GET", "/auth/authenticate", "POST"),
        ("POST", "/stations/orders", "GET, PATCH, DELETE"),
    ] {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut response = Client::default()
            .request(method.clone(), proxy.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        assert_eq!(response.headers().get("allow").unwrap(), allow);
        let body: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
        assert_eq!(body["success"], false);
        assert!(body["error"].as_str().unwrap().contains(allow), "{body}");
    }
}

#[actix_rt::test]
async fn the_seeds_topics_are_stations() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    for (id, name) in [
        ("billing", "Billing"),
        ("audit", "Audit trail"),
        ("zeta", ""),
    ] {
        let topic = json!({"topic": {"id": id, "name": name}});
        let created = send("POST", &proxy.url("/v1/topics"), &root, Some(topic)).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let listed = send("GET", &proxy.url("/v1/topics"), &root, None).await;
    let ids = field_of_each(&listed.body["topics"], "id");
    assert_eq!(ids, ["audit", "billing", "zeta"]);
    let page = send(
        "GET",
        &proxy.url("/v1/topics?offset=1&limit=1"),
        &root,
        None,
    )
    .await;
    assert_eq!(page.body["topics"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["topics"][0]["id"], "billing");

    let renamed = send(
        "PATCH",
        &proxy.url("/v1/topics/billing"),
        &root,
        Some(json!({"topic": {"name": "Invoices"}})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Invoices");
    let fetched = send("GET", &proxy.url("/v1/topics/billing"), &root, None).await;
    assert_eq!(fetched.body["name"], "Invoices");
    let moved = send(
        "PATCH",
        &proxy.url("/v1/topics/billing"),
        &root,
        Some(json!({"topic": {"id": "other"}})),
    )
    .await;
    assert_eq!(moved.status, 400);
    let no_id = send(
        "POST",
        &proxy.url("/v1/topics"),
        &root,
        Some(json!({"topic": {"name": "x"}})),
    )
    .await;
    assert_eq!(no_id.status, 400);
    assert!(
        no_id.body["error"].as_str().unwrap().contains("id"),
        "{}",
        no_id.body
    );

    // Messages: the data is text; JSON must parse.
    let text =
        json!({"message": {"topic_id": "billing", "content_type": "text/plain", "data": "hello"}});
    let published = send("POST", &proxy.url("/v1/messages"), &root, Some(text)).await;
    assert_eq!(published.status, 201, "{}", published.body);
    assert_eq!(published.body["data"], "aGVsbG8=");
    let broken = json!({"message": {"topic_id": "billing", "content_type": "application/json; charset=utf-8", "data": "{oops"}});
    let refused = send("POST", &proxy.url("/v1/messages"), &root, Some(broken)).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    let stored = send("GET", &proxy.url("/stations/billing/messages"), &root, None).await;
    let messages = stored.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "the refused message was not stored");
    assert_eq!(messages[0]["message_id"], published.body["id"]);

    // A producer may publish, not manage topics.
    let shop = producer_user(&proxy, "shop", &["billing"]).await;
    let message = json!({"message": {"topic_id": "billing", "content_type": "application/json", "data": "{}"}});
    assert_eq!(
        send("POST", &proxy.url("/v1/messages"), &shop, Some(message))
            .await
            .status,
        201
    );
    let elsewhere =
        json!({"message": {"topic_id": "audit", "content_type": "application/json", "data": "{}"}});
    assert_eq!(
        send("POST", &proxy.url("/v1/messages"), &shop, Some(elsewhere))
            .await
            .status,
        403
    );
    let topic = json!({"topic": {"id": "mine"}});
    assert_eq!(
        send("POST", &proxy.url("/v1/topics"), &shop, Some(topic))
            .await
            .status,
        403
    );
    assert_eq!(
        send("DELETE", &proxy.url("/v1/topics/billing"), &shop, None)
            .await
            .status,
        403
    );

    assert_eq!(
        send("DELETE", &proxy.url("/v1/topics/zeta"), &root, None)
            .await
            .status,
        200
    );
    assert_eq!(
        send("GET", &proxy.url("/v1/topics/zeta"), &root, None)
            .await
            .status,
        404
    );
}
