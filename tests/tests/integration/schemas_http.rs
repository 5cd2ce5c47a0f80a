//! Schemas and dead letters through the HTTP proxy: the seed's error shapes
//! for single and batch produces, and the admin routes, embedded and remote.

use depot_schemas::wire::{CreateUser, Permissions, StationSettings};
use serde_json::json;

use crate::{
    harness::{ROOT_PASSWORD, TestBroker, fetch_all},
    proxy_harness::{TestProxy, login, post, send},
};

const READING: &str =
    r#"{"type":"object","required":["sensor","value"],"properties":{"value":{"type":"number"}}}"#;

#[actix_rt::test]
async fn batches_keep_valid_messages_in_order_and_dead_letter_the_rest() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let auth = format!("Bearer {jwt}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];

    let created = send(
        "POST",
        &proxy.url("/schemas"),
        &jwt,
        Some(json!({"name": "reading", "type": "json", "definition": serde_json::from_str::<serde_json::Value>(READING).unwrap()})),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["schema"]["active_version"], 1);
    root.create_station("readings", StationSettings::default())
        .await
        .unwrap();
    let attached = send(
        "PUT",
        &proxy.url("/stations/readings/schema"),
        &jwt,
        Some(json!({"schema": "reading"})),
    )
    .await;
    assert_eq!(attached.status, 200, "{}", attached.body);

    // Batch: messages 1 and 4 are invalid.
    let batch = r#"[{"sensor":"a","value":1},{"sensor":"b"},{"sensor":"c","value":3},{"sensor":"d","value":4},{"value":"x"},{"sensor":"f","value":6}]"#;
    let answer = post(
        &proxy.url("/stations/readings/produce/batch"),
        &headers,
        batch,
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["sent"], 4);
    assert_eq!(answer.body["fail"], 2);
    assert_eq!(answer.body["success"], false);
    let errors = answer.body["errors"].as_array().unwrap();
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with("message 1: Schema validation has failed: "),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]
            .as_str()
            .unwrap()
            .starts_with("message 4: Schema validation has failed: ")
    );
    assert!(errors[1].as_str().unwrap().contains("'/value'"));
    assert!(
        errors[1]
            .as_str()
            .unwrap()
            .contains("\"sensor\" is a required property")
    );
    let stored = fetch_all(&root, "readings", 0).await;
    let sensors: Vec<String> = stored
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["sensor"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(sensors, ["a", "c", "d", "f"]);

    // A single message gets the seed's error shape.
    let single = post(
        &proxy.url("/stations/readings/produce/single"),
        &headers,
        r#"{"value":1}"#,
    )
    .await;
    assert_eq!(single.status, 400);
    assert_eq!(single.body["success"], false);
    assert!(
        single.body["error"]
            .as_str()
            .unwrap()
            .starts_with("Schema validation has failed: ")
    );

    // The refused messages are dead letters, with their reasons.
    let listed = send(
        "GET",
        &proxy.url("/stations/readings/dead-letters"),
        &jwt,
        None,
    )
    .await;
    let letters = listed.body["dead_letters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 3);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("\"value\" is a required property")
    );
    let id = letters[1]["id"].as_u64().unwrap();
    let shown = send(
        "GET",
        &proxy.url(&format!("/stations/readings/dead-letters/{id}")),
        &jwt,
        None,
    )
    .await;
    assert_eq!(shown.body["dead_letter"]["payload"], r#"{"value":"x"}"#);

    // Fix the schema, resend everything: all three are produced.
    let loose = json!({"definition": {"type": "object"}});
    let updated = send(
        "POST",
        &proxy.url("/schemas/reading/versions"),
        &jwt,
        Some(loose),
    )
    .await;
    assert_eq!(
        updated.body["schema"]["active_version"], 2,
        "{}",
        updated.body
    );
    let resent = send(
        "POST",
        &proxy.url("/stations/readings/dead-letters/resend"),
        &jwt,
        Some(json!({"all": true})),
    )
    .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert_eq!(
        (resent.body["resent"].as_u64(), resent.body["fail"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(fetch_all(&root, "readings", 0).await.len(), 7);
    let listed = send(
        "GET",
        &proxy.url("/stations/readings/dead-letters"),
        &jwt,
        None,
    )
    .await;
    assert!(listed.body["dead_letters"].as_array().unwrap().is_empty());

    // Roll back, see the versions, and delete only once detached.
    let rolled = send(
        "POST",
        &proxy.url("/schemas/reading/rollback"),
        &jwt,
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(rolled.body["schema"]["active_version"], 1);
    let described = send("GET", &proxy.url("/schemas/reading"), &jwt, None).await;
    assert_eq!(
        described.body["schema"]["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(described.body["schema"]["stations"], json!(["readings"]));
    let refused = send("DELETE", &proxy.url("/schemas/reading"), &jwt, None).await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.body["error"]
            .as_str()
            .unwrap()
            .contains("detach it first")
    );
    assert_eq!(
        send(
            "DELETE",
            &proxy.url("/stations/readings/schema"),
            &jwt,
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        send("DELETE", &proxy.url("/schemas/reading"), &jwt, None)
            .await
            .status,
        200
    );
    let listed = send("GET", &proxy.url("/schemas"), &jwt, None).await;
    assert_eq!(listed.body["schemas"], json!([]));
}

#[actix_rt::test]
async fn schema_routes_need_an_administrator_and_report_bad_definitions() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    root.create_user(CreateUser {
        name: "app".into(),
        password: "app-password".into(),
        permissions: Some(Permissions {
            produce: vec!["*".into()],
            create_stations: true,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let (app, _) = login(&proxy, "app", "app-password").await;
    let create = json!({"name": "s", "type": "json", "definition": {"type": "object"}});
    for (method, path, body) in [
        ("POST", "/schemas", Some(create.clone())),
        ("GET", "/schemas", None),
        ("GET", "/stations/x/dead-letters", None),
    ] {
        let answer = send(method, &proxy.url(path), &app, body).await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
        assert_eq!(answer.body["success"], false);
    }
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let broken = json!({"name": "p", "type": "protobuf", "definition": "syntax = \"proto3\";\nmessage A { int32 x = 1 }", "message_type": "A"});
    let answer = send("POST", &proxy.url("/schemas"), &jwt, Some(broken)).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("p.proto:2:"),
        "{}",
        answer.body
    );
    let unknown = json!({"name": "p", "type": "xml", "definition": "<a/>"});
    assert_eq!(
        send("POST", &proxy.url("/schemas"), &jwt, Some(unknown))
            .await
            .status,
        400
    );
    let missing = send("GET", &proxy.url("/schemas/nope"), &jwt, None).await;
    assert_eq!(missing.status, 404);
}

#[actix_rt::test]
async fn admin_routes_work_through_a_remote_proxy() {
    let broker = TestBroker::start();
    let proxy = TestProxy::remote(broker.addr, &[]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let create = json!({"name": "reading", "type": "json", "definition": READING});
    assert_eq!(
        send("POST", &proxy.url("/schemas"), &jwt, Some(create))
            .await
            .status,
        200
    );
    broker
        .client()
        .await
        .create_station("readings", StationSettings::default())
        .await
        .unwrap();
    let attach = json!({"schema": "reading", "version": 1});
    assert_eq!(
        send(
            "PUT",
            &proxy.url("/stations/readings/schema"),
            &jwt,
            Some(attach)
        )
        .await
        .status,
        200
    );
    let auth = format!("Bearer {jwt}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let single = post(
        &proxy.url("/stations/readings/produce/single"),
        &headers,
        r#"{"sensor":"a"}"#,
    )
    .await;
    assert_eq!(single.status, 400);
    assert!(
        single.body["error"]
            .as_str()
            .unwrap()
            .contains("\"value\" is a required property")
    );
    let listed = send(
        "GET",
        &proxy.url("/stations/readings/dead-letters"),
        &jwt,
        None,
    )
    .await;
    assert_eq!(listed.body["dead_letters"].as_array().unwrap().len(), 1);
}
