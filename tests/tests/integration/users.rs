//! Users and permissions: connection tokens, station globs, admin rights,
//! acting on behalf of users, and the CLI that manages them.

use depot_broker::client::{BrokerClient, ClientError, Secret};
use depot_schemas::wire::{CreateUser, ErrorCode, Permissions, StationSettings, UpdateUser};
use serde_json::Value;

use crate::harness::{TestBroker, broker_refusal, fetch_all, json_message, stored_offset};

fn orders_app() -> CreateUser {
    CreateUser {
        name: "orders-app".into(),
        connection_token: "token-of-orders-app".into(),
        permissions: Some(Permissions {
            produce: vec!["orders.*".into()],
            consume: vec!["orders.*".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn connect_app(broker: &TestBroker, token: &str) -> Result<BrokerClient, ClientError> {
    BrokerClient::connect_with(
        broker.addr,
        "orders-app",
        Secret::ConnectionToken(token.into()),
    )
    .await
}

fn code_of<T>(result: Result<T, ClientError>) -> ErrorCode {
    broker_refusal(result).0
}

#[tokio::test]
async fn a_user_can_do_exactly_what_its_patterns_allow() {
    let broker = TestBroker::start();
    let root = broker.client().await;
    let info = root.create_user(orders_app()).await.unwrap();
    assert!(info.has_connection_token && !info.has_password);
    root.create_station("orders.eu", StationSettings::default())
        .await
        .unwrap();
    root.create_station("payments", StationSettings::default())
        .await
        .unwrap();

    let app = connect_app(&broker, "token-of-orders-app").await.unwrap();
    let outcome = app
        .produce("orders.eu", vec![json_message("{}")])
        .await
        .unwrap();
    assert_eq!(stored_offset(&outcome[0]), 0);
    assert_eq!(
        fetch_all(&app, "orders.eu", 0).await[0].producer,
        "orders-app"
    );

    let (code, message) = broker_refusal(app.produce("payments", vec![json_message("{}")]).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    assert_eq!(
        message,
        "permission denied: user 'orders-app' may not produce to station 'payments'"
    );
    assert_eq!(
        code_of(app.fetch("payments", 0, 10).await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code_of(app.subscribe("payments", None, 10).await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code_of(app.produce("orders.new", vec![json_message("{}")]).await),
        ErrorCode::StationNotFound,
        "no auto-create without the create-stations right"
    );
    assert_eq!(
        code_of(
            app.create_station("orders.us", StationSettings::default())
                .await
        ),
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code_of(app.delete_station("orders.eu").await),
        ErrorCode::PermissionDenied
    );
    assert_eq!(code_of(app.list_users().await), ErrorCode::PermissionDenied);
    let visible: Vec<String> = app
        .list_stations()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(visible, ["orders.eu"]);
}

#[tokio::test]
async fn wrong_secrets_are_refused_alike() {
    let broker = TestBroker::start();
    let root = broker.client().await;
    root.create_user(orders_app()).await.unwrap();
    let wrong_token = connect_app(&broker, "not-the-token").await;
    let no_password = BrokerClient::connect(broker.addr, "orders-app", "token-of-orders-app").await;
    let nobody = BrokerClient::connect(broker.addr, "nobody", "x").await;
    for attempt in [wrong_token.err(), no_password.err(), nobody.err()] {
        match attempt {
            Some(ClientError::Broker { code, message }) => {
                assert_eq!(code, ErrorCode::Unauthenticated);
                assert_eq!(message, "authentication failed: wrong username or password");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn administrators_act_on_behalf_of_users_with_their_rights() {
    let broker = TestBroker::start();
    let root = broker.client().await;
    root.create_user(orders_app()).await.unwrap();
    root.create_station("orders.eu", StationSettings::default())
        .await
        .unwrap();
    root.create_station("payments", StationSettings::default())
        .await
        .unwrap();

    let as_app = |station: &'static str| {
        let root = root.clone();
        async move {
            root.start_produce_as(station, vec![json_message("{}")], "orders-app".into())
                .await?
                .await
        }
    };
    as_app("orders.eu").await.unwrap();
    assert_eq!(
        fetch_all(&root, "orders.eu", 0).await[0].producer,
        "orders-app"
    );
    assert_eq!(
        code_of(as_app("payments").await),
        ErrorCode::PermissionDenied
    );

    // A change of rights applies to the very next request.
    let change = UpdateUser {
        name: "orders-app".into(),
        permissions: Some(Permissions {
            produce: vec!["payments".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    root.update_user(change).await.unwrap();
    as_app("payments").await.unwrap();
    assert_eq!(
        code_of(as_app("orders.eu").await),
        ErrorCode::PermissionDenied
    );

    // Only administrators may act for someone else.
    let app = connect_app(&broker, "token-of-orders-app").await.unwrap();
    let result = app
        .start_produce_as("payments", vec![json_message("{}")], "root".into())
        .await
        .unwrap()
        .await;
    assert_eq!(code_of(result), ErrorCode::PermissionDenied);
}

#[tokio::test]
async fn deleted_users_cannot_connect_and_root_stays() {
    let broker = TestBroker::start();
    let root = broker.client().await;
    root.create_user(orders_app()).await.unwrap();
    root.delete_user("orders-app").await.unwrap();
    assert_eq!(
        code_of(connect_app(&broker, "token-of-orders-app").await),
        ErrorCode::Unauthenticated
    );
    assert_eq!(
        code_of(root.delete_user("root").await),
        ErrorCode::BadRequest
    );
    let no_secret = CreateUser {
        name: "ghost".into(),
        ..Default::default()
    };
    assert_eq!(
        code_of(root.create_user(no_secret).await),
        ErrorCode::BadRequest
    );
}

#[test]
fn users_from_the_cli() {
    let broker = TestBroker::start();
    let run = |args: &[&str]| {
        let output = broker.cli(args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let created: Value = serde_json::from_str(&run(&[
        "--json",
        "users",
        "create",
        "ana",
        "--password",
        "s3cret-pass",
        "--produce",
        "orders.*",
        "--consume",
        "orders.*",
        "--create-stations",
    ]))
    .unwrap();
    assert_eq!(created["produce"], serde_json::json!(["orders.*"]));
    assert_eq!(created["create_stations"], true);
    assert_eq!(created["has_password"], true);

    run(&[
        "users",
        "update",
        "ana",
        "--produce",
        "orders.*",
        "--produce",
        "audit",
        "--admin",
        "false",
    ]);
    let listed = run(&["--json", "users", "list"]);
    assert!(
        !listed.contains("s3cret-pass") && !listed.contains("argon2"),
        "{listed}"
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let ana = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "ana")
        .unwrap();
    assert_eq!(ana["produce"], serde_json::json!(["orders.*", "audit"]));
    assert_eq!(ana["consume"], serde_json::json!(["orders.*"]), "unchanged");

    // Ana's own password works with the CLI, and her rights apply.
    let as_ana = std::process::Command::new(crate::harness::CLI_BIN)
        .args(["produce", "audit", "{}"])
        .env("DEPOT_BROKER", broker.addr.to_string())
        .env("DEPOT_USER", "ana")
        .env("DEPOT_PASSWORD", "s3cret-pass")
        .output()
        .unwrap();
    assert!(
        as_ana.status.success(),
        "{}",
        String::from_utf8_lossy(&as_ana.stderr)
    );

    run(&["users", "delete", "ana"]);
    let gone = broker.cli(&["users", "delete", "ana"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("user 'ana' does not exist"));
}

#[actix_rt::test]
async fn users_are_managed_over_http_by_administrators() {
    use crate::proxy_harness::{TestProxy, login, post, send};
    use serde_json::json;

    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", crate::harness::ROOT_PASSWORD).await;
    let created = send(
        "POST",
        &proxy.url("/users"),
        &root,
        Some(json!({"name": "shop", "password": "shop-password-1", "produce": ["orders.*"]})),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["user"]["produce"], json!(["orders.*"]));
    assert_eq!(created.body["user"]["has_password"], true);
    let listed = send("GET", &proxy.url("/users"), &root, None).await;
    let text = listed.body.to_string();
    assert!(
        text.contains("\"shop\"") && !text.contains("shop-password-1"),
        "{text}"
    );

    // The new user produces where allowed, and may not administer users.
    let (shop, _) = login(&proxy, "shop", "shop-password-1").await;
    let auth = format!("Bearer {shop}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let produce = |station: &str| proxy.url(&format!("/stations/{station}/produce/single"));
    assert_eq!(
        post(&produce("orders.eu"), &headers, "{}").await.status,
        404
    );
    assert_eq!(post(&produce("payments"), &headers, "{}").await.status, 403);
    assert_eq!(
        send("GET", &proxy.url("/users"), &shop, None).await.status,
        403
    );
    let sneaky = json!({"admin": true});
    assert_eq!(
        send("PATCH", &proxy.url("/users/shop"), &shop, Some(sneaky))
            .await
            .status,
        403
    );

    // A change of one permission keeps the others.
    let changed = send(
        "PATCH",
        &proxy.url("/users/shop"),
        &root,
        Some(json!({"create_stations": true})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["user"]["produce"], json!(["orders.*"]));
    assert_eq!(changed.body["user"]["create_stations"], true);
    assert_eq!(
        post(&produce("orders.eu"), &headers, "{}").await.status,
        200
    );

    // A new password: the old one no longer logs in.
    let repassworded = json!({"password": "shop-password-2"});
    assert_eq!(
        send(
            "PATCH",
            &proxy.url("/users/shop"),
            &root,
            Some(repassworded)
        )
        .await
        .status,
        200
    );
    let old = post(
        &proxy.url("/auth/authenticate"),
        &[("Content-Type", "application/json")],
        json!({"username": "shop", "password": "shop-password-1"}).to_string(),
    )
    .await;
    assert_eq!(old.status, 401);

    // Deleted: its token stops working at once.
    assert_eq!(
        send("DELETE", &proxy.url("/users/shop"), &root, None)
            .await
            .status,
        200
    );
    assert_eq!(
        post(&produce("orders.eu"), &headers, "{}").await.status,
        403
    );
    let missing = send(
        "PATCH",
        &proxy.url("/users/shop"),
        &root,
        Some(json!({"admin": false})),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
}
