//! The wire protocol over TLS (`--wire-tls-cert`, `--wire-tls-key`): the
//! CLI (`--tls-ca`) and a remote proxy (`--broker-tls-ca`) reach a broker
//! that serves it; plain clients, clients trusting another CA and silent
//! sockets get nothing.

use std::{
    io::Read,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use depot_broker::{
    client::{BrokerClient, Endpoint, Secret},
    tls::ClientTls,
};
use serde_json::Value;
use tempfile::TempDir;

use crate::{
    harness::{CLI_BIN, ROOT_PASSWORD, TestBroker, fetch_all},
    https::{Identity, identity},
    proxy_harness::{TestProxy, login, post},
};

fn tls_args(identity: &Identity) -> Vec<&str> {
    vec![
        "--wire-tls-cert",
        identity.cert.to_str().unwrap(),
        "--wire-tls-key",
        identity.key.to_str().unwrap(),
    ]
}

async fn tls_client(address: &str, ca: &Identity) -> Result<BrokerClient, String> {
    let endpoint = Endpoint {
        address: address.to_owned(),
        tls: Some(ClientTls::new(Some(&ca.cert)).unwrap()),
    };
    BrokerClient::connect_to(&endpoint, "root", Secret::Password(ROOT_PASSWORD.into()))
        .await
        .map_err(|e| e.to_string())
}

fn cli(address: &str, args: &[&str]) -> std::process::Output {
    Command::new(CLI_BIN)
        .args(["--broker", address])
        .args(args)
        .env("DEPOT_PASSWORD", ROOT_PASSWORD)
        .output()
        .unwrap()
}

#[actix_rt::test]
async fn the_cli_and_a_remote_proxy_reach_a_broker_over_tls() {
    let identity = identity();
    let broker = TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &tls_args(&identity));
    let address = broker.addr.to_string();
    let ca = identity.cert.to_str().unwrap();

    let created = cli(&address, &["--tls-ca", ca, "stations", "create", "secure"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let listed = cli(&address, &["--tls-ca", ca, "--json", "stations", "list"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["name"])
        .collect();
    assert_eq!(names, ["depot.audit", "secure"], "with the audit trail");

    // Without TLS, or trusting another certificate: no session.
    let plain = cli(&address, &["stations", "list"]);
    assert!(!plain.status.success());
    let said = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("--tls-ca"), "{said}");
    let stranger = self::identity();
    let Err(refused) = tls_client(&address, &stranger).await else {
        panic!("a client trusting another certificate opened a session");
    };
    assert!(refused.contains("certificate"), "{refused}");

    // A remote proxy over TLS: logins and produces go through.
    let proxy = TestProxy::remote(broker.addr, &["--broker-tls-ca", ca]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let auth = format!("Bearer {jwt}");
    let produced = post(
        &proxy.url("/stations/secure/produce/single"),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        r#"{"via":"proxy"}"#,
    )
    .await;
    assert_eq!(produced.status, 200, "{}", produced.body);
    let client = tls_client(&address, &identity).await.unwrap();
    let stored = fetch_all(&client, "secure", 0).await;
    assert_eq!(&stored[0].payload[..], br#"{"via":"proxy"}"#);
}

#[actix_rt::test]
async fn an_embedded_broker_serves_its_wire_port_over_tls() {
    let identity = identity();
    let proxy = TestProxy::embedded(&tls_args(&identity));
    let address = proxy.broker_addr.unwrap().to_string();
    let ca = identity.cert.to_str().unwrap();
    let created = cli(&address, &["--tls-ca", ca, "stations", "create", "inside"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(
        BrokerClient::connect(&address, "root", ROOT_PASSWORD)
            .await
            .is_err()
    );
}

#[test]
fn a_socket_that_never_starts_tls_is_closed_on_time() {
    let identity = identity();
    let mut args = tls_args(&identity);
    args.extend(["--handshake-timeout", "1s"]);
    let broker = TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &args);
    let mut silent = std::net::TcpStream::connect(broker.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let read = silent.read(&mut [0u8; 16]);
    assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );
}

#[actix_rt::test]
async fn the_broker_serves_a_renewed_certificate_after_sighup() {
    let served = identity();
    let broker = TestBroker::start_with(Arc::new(TempDir::new().unwrap()), &tls_args(&served));
    let address = broker.addr.to_string();
    assert!(tls_client(&address, &served).await.is_ok());
    // The old certificate, kept for a client that still trusts only it.
    let old = identity();
    std::fs::copy(&served.cert, &old.cert).unwrap();
    let renewed = identity();
    std::fs::copy(&renewed.cert, &served.cert).unwrap();
    std::fs::copy(&renewed.key, &served.key).unwrap();
    broker.hang_up();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tls_client(&address, &renewed).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tls_client(&address, &old).await.is_err());
}
