//! Deleting dead letters (`DeleteDeadLetters`, `depot dead-letters delete`,
//! `DELETE /stations/{name}/dead-letters[/{id}]`): by id or all of them,
//! in bounded passes, durably, by administrators only.

use depot_broker::client::BrokerClient;
use depot_schemas::wire::{self, ErrorCode};

use crate::{
    harness::{ROOT_PASSWORD, TestBroker, broker_refusal, json_message, worker_user},
    proxy_harness::{TestProxy, login, producer_user_of, send},
    schemas_json::{ORDER_SCHEMA, create_json_schema, station_with_schema},
};

/// Station "orders" with an order schema and `count` refused messages.
async fn orders_with_dead_letters(client: &BrokerClient, count: usize) {
    create_json_schema(client, "order", ORDER_SCHEMA).await;
    station_with_schema(client, "orders", "order").await;
    let refused = (0..count)
        .map(|n| json_message(&format!(r#"{{"n":{n}}}"#)))
        .collect();
    client.produce("orders", refused).await.unwrap();
}

async fn dead_letter_ids(client: &BrokerClient) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .list_dead_letters("orders", after, 1000)
            .await
            .unwrap();
        ids.extend(page.dead_letters.iter().map(|l| l.id));
        after = ids.last().copied().unwrap_or(after);
        if !page.more {
            return ids;
        }
    }
}

#[tokio::test]
async fn dead_letters_are_deleted_by_id_or_all_in_passes_and_durably() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    // More than one pass (1,000 a request) of letters.
    orders_with_dead_letters(&client, 1_205).await;
    let ids = dead_letter_ids(&client).await;
    assert_eq!(ids.len(), 1_205);

    let deleted = client
        .delete_dead_letters(wire::DeleteDeadLetters {
            station: "orders".into(),
            ids: vec![ids[0], ids[1], 424242],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deleted.deleted, 2, "the unknown id is not counted");

    // All of them, from the CLI: more than one request, then none left.
    let printed = broker.cli_ok(&["dead-letters", "delete", "orders", "--all"]);
    assert!(
        printed.contains("deleted 1203 dead letters of orders"),
        "{printed}"
    );
    // SIGKILL right after: the deletions were on disk.
    let broker = broker.restart(&[]);
    let client = broker.client().await;
    assert_eq!(dead_letter_ids(&client).await.len(), 0, "none came back");
    let missing = broker.cli(&["dead-letters", "delete", "orders", &ids[5].to_string()]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("1 of the ids given were not dead letters"),
        "{stderr}"
    );

    // A letter refused after the cut of an `all` stays.
    client
        .produce("orders", vec![json_message("{}")])
        .await
        .unwrap();
    let cut = client
        .delete_dead_letters(wire::DeleteDeadLetters {
            station: "orders".into(),
            all: true,
            up_to_id: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((cut.deleted, cut.more), (0, false));
    assert_eq!(dead_letter_ids(&client).await.len(), 1);

    // Administrators only.
    let worker = worker_user(&broker, &client).await;
    let all = wire::DeleteDeadLetters {
        station: "orders".into(),
        all: true,
        ..Default::default()
    };
    let (code, _) = broker_refusal(worker.delete_dead_letters(all).await);
    assert_eq!(code, ErrorCode::PermissionDenied);
    assert_eq!(dead_letter_ids(&client).await.len(), 1);
}

#[actix_rt::test]
async fn dead_letters_are_deleted_over_http() {
    let proxy = TestProxy::embedded(&[]);
    let client = proxy.broker_client().await;
    orders_with_dead_letters(&client, 3).await;
    let ids = dead_letter_ids(&client).await;
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let one = |id: u64| proxy.url(&format!("/stations/orders/dead-letters/{id}"));

    let deleted = send("DELETE", &one(ids[0]), &root, None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["deleted"], 1);
    let again = send("DELETE", &one(ids[0]), &root, None).await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(again.body["success"], false);

    let writer = producer_user_of(&client, &proxy, "writer", &["*"]).await;
    let all = proxy.url("/stations/orders/dead-letters");
    let denied = send("DELETE", &all, &writer, None).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let rest = send("DELETE", &all, &root, None).await;
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert_eq!(rest.body["deleted"], 2);
    assert_eq!(dead_letter_ids(&client).await, Vec::<u64>::new());
    let unknown = send(
        "DELETE",
        &proxy.url("/stations/nowhere/dead-letters"),
        &root,
        None,
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}
