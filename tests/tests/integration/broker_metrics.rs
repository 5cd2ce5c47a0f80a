//! The broker's own gauges, read at each scrape: per station (messages,
//! bytes, durable head), the number of stations and the open wire
//! connections.

use depot_broker::client::BrokerClient;
use depot_schemas::wire;

use crate::{
    harness::{PATIENCE, ROOT_PASSWORD, TestBroker},
    proxy_harness::metric_value,
};

fn payload(bytes: usize) -> wire::NewMessage {
    wire::NewMessage {
        content_type: "text/plain".into(),
        payload: vec![b'x'; bytes].into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn stations_and_connections_are_gauged_at_each_scrape() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    client
        .create_station("clicks", Default::default())
        .await
        .unwrap();
    client
        .create_station("quiet", Default::default())
        .await
        .unwrap();
    client
        .produce("clicks", vec![payload(10), payload(20), payload(30)])
        .await
        .unwrap();

    let metrics = client.metrics().await.unwrap();
    let station = |name: &str, station: &str| {
        metric_value(
            &metrics,
            &format!(r#"depot_broker_station_{name}{{station="{station}"}}"#),
        )
    };
    assert_eq!(station("messages", "clicks"), 3);
    assert_eq!(station("bytes", "clicks"), 60);
    assert_eq!(station("next_offset", "clicks"), 3);
    assert_eq!(station("messages", "quiet"), 0);
    assert!(
        metric_value(&metrics, "depot_broker_stations") >= 2,
        "{metrics}"
    );

    // A purge shows at the next scrape; the head stays where it was.
    client.purge_station("clicks", Some(2)).await.unwrap();
    let metrics = client.metrics().await.unwrap();
    let clicks = |name: &str| {
        metric_value(
            &metrics,
            &format!(r#"depot_broker_station_{name}{{station="clicks"}}"#),
        )
    };
    assert_eq!(
        (clicks("messages"), clicks("bytes"), clicks("next_offset")),
        (1, 30, 3)
    );

    // Connections: one more while a second client is connected.
    let open = || async {
        metric_value(
            &client.metrics().await.unwrap(),
            "depot_broker_wire_connections",
        )
    };
    let before = open().await;
    let second = BrokerClient::connect(broker.addr, "root", ROOT_PASSWORD)
        .await
        .unwrap();
    second.ping().await.unwrap();
    assert_eq!(open().await, before + 1);
    drop(second);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while open().await != before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed connection is still counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
