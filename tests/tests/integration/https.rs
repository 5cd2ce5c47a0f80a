//! HTTPS on the proxy (`--tls-cert`, `--tls-key`): the API and WebSockets
//! over TLS with a real certificate, plain HTTP refused, a handshake that
//! never finishes closed on time, and bad key material refused at start.

use std::{
    io::Read,
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use awc::{Client, Connector, ws};
use futures::{SinkExt, StreamExt};
use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    harness::ROOT_PASSWORD,
    proxy_harness::{PROXY_BIN, TestProxy},
};

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM.
pub struct Identity {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    der: CertificateDer<'static>,
}

pub fn identity() -> Identity {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = TempDir::new().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    Identity {
        _dir: dir,
        cert,
        key,
        der: generated.cert.der().clone(),
    }
}

/// An HTTPS client (HTTP/1.1) that trusts `certificate` alone.
fn client_trusting(certificate: &CertificateDer<'static>) -> Client {
    client_speaking(certificate, &[])
}

/// The same, offering these protocols by ALPN (`h2` for HTTP/2).
fn client_speaking(certificate: &CertificateDer<'static>, alpn: &[&[u8]]) -> Client {
    let mut roots = RootCertStore::empty();
    roots.add(certificate.clone()).unwrap();
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Client::builder()
        .connector(Connector::new().rustls_0_23(Arc::new(config)))
        .finish()
}

/// Logs in as root through `client`: the access token, and the HTTP
/// version the exchange used.
async fn login_over(client: &Client, base: &str) -> (String, awc::http::Version) {
    let mut login = client
        .post(format!("{base}/auth/authenticate"))
        .send_json(&json!({"username": "root", "password": ROOT_PASSWORD}))
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let jwt = login.json::<Value>().await.unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    (jwt, login.version())
}

fn tls_proxy(identity: &Identity, extra: &[&str]) -> TestProxy {
    let mut args = vec![
        "--tls-cert",
        identity.cert.to_str().unwrap(),
        "--tls-key",
        identity.key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    TestProxy::embedded(&args)
}

#[actix_rt::test]
async fn the_api_and_websockets_are_served_over_tls() {
    let identity = identity();
    let proxy = tls_proxy(&identity, &[]);
    let client = client_trusting(&identity.der);
    let base = format!("https://{}", proxy.addr);

    let (jwt, version) = login_over(&client, &base).await;
    assert_eq!(version, awc::http::Version::HTTP_11);

    let mut produced = client
        .post(format!("{base}/stations/secure/produce/single"))
        .insert_header(("Authorization", format!("Bearer {jwt}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body(r#"{"over":"tls"}"#)
        .await
        .unwrap();
    assert_eq!(produced.status().as_u16(), 200);
    assert_eq!(produced.json::<Value>().await.unwrap()["offset"], 0);

    // WSS: a subscription pushes what is produced.
    let (_, mut socket) = client
        .ws(format!("wss://{}/ws?authorization={jwt}", proxy.addr))
        .connect()
        .await
        .unwrap();
    let mut frames = Vec::new();
    socket
        .send(ws::Message::Text(
            json!({"action": "subscribe", "station": "secure", "from": 0})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let ws::Frame::Text(text) = frame {
            let value: Value = serde_json::from_slice(&text).unwrap();
            let done = value["action"] == "message";
            frames.push(value);
            if done {
                break;
            }
        }
    }
    let message = frames.last().unwrap();
    assert_eq!(message["action"], "message", "{frames:?}");
    assert_eq!(message["data"], json!({"over": "tls"}));
}

#[actix_rt::test]
async fn plain_http_and_stalled_handshakes_get_nothing() {
    let identity = identity();
    let proxy = tls_proxy(&identity, &["--tls-handshake-timeout", "1s"]);

    // Plain HTTP to the TLS port is no HTTP exchange.
    let plain = Client::default()
        .get(format!("http://{}/monitoring/status", proxy.addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "a plain request got an answer");

    // A client that opens TCP and never says hello is closed on time.
    let mut silent = std::net::TcpStream::connect(proxy.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 16];
    let read = silent.read(&mut buffer);
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "the server sent {read:?} to a client that said nothing"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "closed after {waited:?}"
    );

    // The proxy still serves TLS clients.
    let status = client_trusting(&identity.der)
        .get(format!("https://{}/monitoring/status", proxy.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status().as_u16(), 200);
}

#[test]
fn a_key_that_does_not_match_or_a_missing_file_stops_the_start() {
    let identity = identity();
    let other = self::identity();
    let data = TempDir::new().unwrap();
    for (cert, key, expected) in [
        (
            identity.cert.clone(),
            other.key.clone(),
            "do not make a TLS identity",
        ),
        (
            identity.cert.clone(),
            PathBuf::from("/nonexistent/key.pem"),
            "key.pem",
        ),
        (
            identity.key.clone(),
            identity.key.clone(),
            "no PEM certificate",
        ),
    ] {
        let output = Command::new(PROXY_BIN)
            .arg("--data")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .env("DEPOT_ROOT_PASSWORD", ROOT_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

/// Whether a client trusting `trusted` completes a request to `proxy`.
async fn trusted_by(proxy: &TestProxy, trusted: &Identity) -> bool {
    client_trusting(&trusted.der)
        .get(format!("https://{}/monitoring/status", proxy.addr))
        .send()
        .await
        .is_ok()
}

#[actix_rt::test]
async fn a_renewed_certificate_is_served_after_sighup() {
    let served = identity();
    let proxy = tls_proxy(&served, &[]);
    assert!(trusted_by(&proxy, &served).await);

    // A renewal written over the files, then SIGHUP.
    let renewed = identity();
    std::fs::copy(&renewed.cert, &served.cert).unwrap();
    std::fs::copy(&renewed.key, &served.key).unwrap();
    proxy.hang_up();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trusted_by(&proxy, &renewed).await {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !trusted_by(&proxy, &served).await,
        "the old certificate is still served"
    );

    // A broken renewal is not taken: the working identity stays.
    std::fs::write(&served.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    proxy.hang_up();
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert!(trusted_by(&proxy, &renewed).await);
}

#[actix_rt::test]
async fn an_http2_connection_holds_at_most_its_stream_budget() {
    let identity = identity();
    let proxy = tls_proxy(&identity, &["--http2-max-streams", "2"]);
    let client = client_speaking(&identity.der, &[b"h2"]);
    let base = format!("https://{}", proxy.addr);
    let (jwt, version) = login_over(&client, &base).await;
    assert_eq!(version, awc::http::Version::HTTP_2, "HTTP/2 negotiated");

    // Two requests whose bodies never come hold the connection's budget.
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let request = client
                .post(format!("{base}/stations/held/produce/single"))
                .insert_header(("Authorization", format!("Bearer {jwt}")))
                .insert_header(("Content-Type", "application/json"))
                .send_stream(futures::stream::pending::<
                    Result<bytes::Bytes, std::io::Error>,
                >());
            actix_rt::spawn(request)
        })
        .collect();
    // Once both are in, one more request on the connection is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = loop {
        let answer = client
            .get(format!("{base}/monitoring/status"))
            .send()
            .await
            .unwrap();
        if answer.status().as_u16() == 429 {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "never refused: {}",
            answer.status()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    let body = refused.json::<Value>().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--http2-max-streams"),
        "{body}"
    );

    // Abandoned, they give their streams back.
    for request in stalled {
        request.abort();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client
            .get(format!("{base}/monitoring/status"))
            .send()
            .await
            .unwrap();
        if answer.status().as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused: {}",
            answer.status()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}
