//! The audit trail, `depot.audit`: every change to the broker's
//! configuration and every such attempt refused, with who did it, in order,
//! durably, with no secret in it; nobody but the broker writes there.

use depot_broker::client::{ActingFor, BrokerClient};
use depot_schemas::wire::{self, ErrorCode, request::Op};
use serde_json::{Value, json};

use crate::{
    harness::{TestBroker, broker_refusal, json_message},
    proxy_harness::{
        TestProxy, create_station as create_station_over_http, login, producer_anywhere,
    },
};

/// The audit trail's entries, oldest first, as `depot fetch` prints them.
fn entries(broker: &TestBroker) -> Vec<Value> {
    let printed = broker.cli_ok(&["--json", "fetch", "depot.audit", "--count", "1000"]);
    printed
        .lines()
        .map(|line| {
            let message: Value = serde_json::from_str(line).unwrap();
            assert_eq!(message["producer"], "depot");
            serde_json::from_str(message["payload"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// `(operation, user, outcome)` of each entry.
fn summary(entries: &[Value]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().unwrap().to_owned();
            (text("operation"), text("user"), text("outcome"))
        })
        .collect()
}

fn row(operation: &str, user: &str, outcome: &str) -> (String, String, String) {
    (operation.into(), user.into(), outcome.into())
}

#[tokio::test]
async fn every_change_and_every_refused_attempt_is_recorded_without_secrets() {
    let broker = TestBroker::start();
    let none = broker.cli_ok(&["audit"]);
    assert!(none.contains("no changes recorded yet"), "{none}");
    broker.cli_ok(&["stations", "create", "orders"]);
    broker.cli_ok(&[
        "users",
        "create",
        "ana",
        "--password",
        "first-secret-pw",
        "--produce",
        "orders",
    ]);
    broker.cli_ok(&["users", "update", "ana", "--password", "second-secret-pw"]);
    let as_ana = |args: &[&str]| {
        let mut all = vec!["--user", "ana", "--password", "second-secret-pw"];
        all.extend(args);
        broker.cli(&all)
    };
    // Traffic is not audited; a change ana may not make is, refused.
    assert!(
        as_ana(&["produce", "orders", r#"{"n":1}"#])
            .status
            .success()
    );
    assert!(!as_ana(&["stations", "delete", "orders"]).status.success());
    broker.cli_ok(&["stations", "purge", "orders"]);
    broker.cli_ok(&["stations", "delete", "orders"]);

    let client = broker.client().await;
    // Nobody else writes the trail, nor deletes or purges it.
    let (code, message) = broker_refusal(
        client
            .produce("depot.audit", vec![json_message("{}")])
            .await,
    );
    assert_eq!(code, ErrorCode::PermissionDenied);
    assert!(message.contains("written by the broker"), "{message}");
    let (code, _) = broker_refusal(client.delete_station("depot.audit").await);
    assert_eq!(code, ErrorCode::PermissionDenied);

    // A restart keeps it, and it goes on, with this run's retention.
    let info = broker.cli_ok(&["--json", "stations", "info", "depot.audit"]);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["settings"]["retention_age_ms"],
        90 * 24 * 3_600_000_u64
    );
    let broker = broker.restart(&["--audit-retention", "30d"]);
    broker.cli_ok(&["users", "delete", "ana"]);
    let info = broker.cli_ok(&["--json", "stations", "info", "depot.audit"]);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["settings"]["retention_age_ms"],
        30 * 24 * 3_600_000_u64
    );

    let all = entries(&broker);
    assert_eq!(
        summary(&all),
        [
            row("create_station", "root", "done"),
            row("create_user", "root", "done"),
            row("update_user", "root", "done"),
            row("delete_station", "ana", "refused"),
            row("purge_station", "root", "done"),
            row("delete_station", "root", "done"),
            row("delete_station", "root", "refused"),
            row("delete_user", "root", "done"),
        ]
    );
    assert_eq!(all[0]["target"], json!({ "station": "orders" }));
    assert_eq!(all[1]["target"]["user"], "ana");
    assert_eq!(
        all[1]["target"]["permissions"]["produce"],
        json!(["orders"])
    );
    assert_eq!(all[2]["target"]["credentials_changed"], json!(["password"]));
    assert_eq!(all[3]["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(all[6]["target"], json!({ "station": "depot.audit" }));
    // `depot audit`: the latest, as a table or JSON lines.
    let table = broker.cli_ok(&["audit", "--last", "2"]);
    assert!(
        table.contains("delete_user") && table.contains("refused: "),
        "{table}"
    );
    assert!(!table.contains("create_user"), "only the last two: {table}");
    let lines = broker.cli_ok(&["--json", "audit"]);
    let latest: Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(latest["operation"], "delete_user");
    assert!(
        latest["time"].is_string() && from_loopback(&latest),
        "{latest}"
    );
    let text = broker.cli_ok(&["--json", "fetch", "depot.audit", "--count", "1000"]);
    for secret in ["first-secret-pw", "second-secret-pw"] {
        assert!(
            !text.contains(secret),
            "a secret in the audit trail: {text}"
        );
    }
}

/// Over HTTP through a proxy with a remote broker: the entry names the
/// token's user, not the proxy's own.
#[actix_rt::test]
async fn changes_over_http_name_the_token_user() {
    let broker = TestBroker::start();
    let proxy = TestProxy::remote(broker.addr, &[]);
    let client = broker.client().await;
    client
        .create_user(wire::CreateUser {
            name: "ops".into(),
            password: "ops-password".into(),
            permissions: Some(wire::Permissions {
                admin: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let (jwt, _) = login(&proxy, "ops", "ops-password").await;
    create_station_over_http(&proxy, &jwt, "clicks").await;
    let last = entries(&broker).pop().unwrap();
    assert_eq!(
        (&last["operation"], &last["user"], &last["target"]),
        (
            &json!("create_station"),
            &json!("ops"),
            &json!({ "station": "clicks" })
        )
    );
    assert!(from_loopback(&last), "{last}");
}

fn from_loopback(entry: &Value) -> bool {
    entry["from"].as_str().unwrap().starts_with("127.0.0.1:")
}

/// The trail's entries read with a client (a proxy's embedded broker).
async fn entries_of(client: &BrokerClient) -> Vec<Value> {
    let fetched = client.fetch("depot.audit", 0, 1000).await.unwrap();
    let payloads = fetched.messages.iter();
    payloads
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect()
}

fn create_station(name: &str) -> Op {
    Op::CreateStation(wire::CreateStation {
        name: name.into(),
        ..Default::default()
    })
}

/// An entry says where the change came from: the connection's peer, or
/// the HTTP client a proxy names, which only an administrator may name.
#[actix_rt::test]
async fn entries_say_where_the_change_came_from_and_it_cannot_be_forged() {
    let broker = TestBroker::start();
    let root = broker.client().await;
    let mut bob = producer_anywhere("bob");
    bob.password = "bob-password".into();
    root.create_user(bob).await.unwrap();
    let bob = BrokerClient::connect(broker.addr, "bob", "bob-password")
        .await
        .unwrap();
    let claimed = |user| ActingFor {
        user,
        client_address: "203.0.113.9:4444",
        ..Default::default()
    };
    bob.call_as(create_station("forged"), claimed("bob"))
        .await
        .unwrap();
    root.call_as(create_station("named"), claimed("bob"))
        .await
        .unwrap();
    let all = entries_of(&root).await;
    let (forged, named) = (&all[all.len() - 2], &all[all.len() - 1]);
    assert!(
        from_loopback(forged),
        "a non-administrator's claim: {forged}"
    );
    assert_eq!(
        (&named["user"], &named["from"]),
        (&json!("bob"), &json!("203.0.113.9:4444")),
        "an administrator acting for bob names bob's client"
    );

    // The embedded proxy passes its HTTP client's address on.
    let proxy = TestProxy::embedded(&[]);
    let (jwt, _) = login(&proxy, "root", crate::harness::ROOT_PASSWORD).await;
    create_station_over_http(&proxy, &jwt, "clicks").await;
    let last = entries_of(&proxy.broker_client().await)
        .await
        .pop()
        .unwrap();
    assert!(from_loopback(&last), "{last}");
}
