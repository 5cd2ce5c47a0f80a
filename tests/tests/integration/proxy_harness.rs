//! Real `depot-proxy` processes for the HTTP tests, and a small HTTP client
//! (awc) that speaks to them.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::Arc,
};

use awc::Client;
use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{ROOT_PASSWORD, read_listen_addresses};

pub const PROXY_BIN: &str = env!("CARGO_BIN_EXE_depot-proxy-under-test");

/// A `depot-proxy` child process; killed when dropped.
pub struct TestProxy {
    child: Child,
    pub addr: SocketAddr,
    /// The embedded broker's wire address (embedded mode only).
    pub broker_addr: Option<SocketAddr>,
    _data: Option<Arc<TempDir>>,
}

impl TestProxy {
    /// A proxy with its own embedded broker on a fresh directory.
    pub fn embedded(extra_args: &[&str]) -> Self {
        let data = Arc::new(TempDir::new().unwrap());
        let mut child = Command::new(PROXY_BIN)
            .arg("--data")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("DEPOT_ROOT_PASSWORD", ROOT_PASSWORD)
            // As in the seed's curl examples.
            .env("DEPOT_ROOT_CONNECTION_TOKEN", "memphis")
            .stdout(Stdio::piped())
            .stderr(log_target())
            .spawn()
            .expect("start depot-proxy");
        let addrs = read_listen_addresses(&mut child, &["depot-broker", "depot-proxy"]);
        Self {
            child,
            addr: addrs[1],
            broker_addr: Some(addrs[0]),
            _data: Some(data),
        }
    }

    /// A proxy in front of a remote broker.
    pub fn remote(broker: SocketAddr, extra_args: &[&str]) -> Self {
        let mut child = Command::new(PROXY_BIN)
            .args(["--listen", "127.0.0.1:0", "--broker", &broker.to_string()])
            .args(extra_args)
            .env("DEPOT_PROXY_BROKER_PASSWORD", ROOT_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(log_target())
            .spawn()
            .expect("start depot-proxy");
        let addr = read_listen_addresses(&mut child, &["depot-proxy"])[0];
        Self {
            child,
            addr,
            broker_addr: None,
            _data: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM (the proxy then shuts down gracefully); see
    /// [`TestProxy::exit_status`].
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
    }

    /// Waits for the process to exit.
    pub fn exit_status(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for the proxy")
    }

    /// SIGHUP: read the TLS certificates and keys again.
    pub fn hang_up(&self) {
        crate::harness::hang_up(&self.child);
    }

    /// A wire client of the embedded broker, as root.
    pub async fn broker_client(&self) -> depot_broker::client::BrokerClient {
        depot_broker::client::BrokerClient::connect(
            self.broker_addr.unwrap(),
            "root",
            ROOT_PASSWORD,
        )
        .await
        .unwrap()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_target() -> Stdio {
    if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// An HTTP answer: status and JSON body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// POSTs `body` with the given headers and returns status and JSON body.
pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<bytes::Bytes>) -> Answer {
    let mut request = Client::default().post(url);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send_body(body.into()).await.expect("HTTP request");
    let status = response.status().as_u16();
    let bytes = response.body().limit(1 << 20).await.expect("HTTP body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    Answer { status, body }
}

/// Any method with a bearer token and an optional JSON body.
pub async fn send(method: &str, url: &str, jwt: &str, body: Option<Value>) -> Answer {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let request = Client::default()
        .request(method, url)
        .insert_header(("Authorization", format!("Bearer {jwt}")));
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .expect("HTTP request");
    let status = response.status().as_u16();
    let bytes = response.body().limit(1 << 20).await.expect("HTTP body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
    Answer { status, body }
}

pub async fn get(url: &str) -> Answer {
    let mut response = Client::default()
        .get(url)
        .send()
        .await
        .expect("HTTP request");
    let status = response.status().as_u16();
    let bytes = response.body().await.expect("HTTP body");
    Answer {
        status,
        body: serde_json::from_slice(&bytes).expect("JSON body"),
    }
}

/// The value of the unlabelled metric `name` in a `/metrics` text.
pub fn metric_value(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

/// GETs a text body.
pub async fn get_text(url: &str) -> (u16, String) {
    let mut response = Client::default()
        .get(url)
        .send()
        .await
        .expect("HTTP request");
    let bytes = response.body().await.expect("HTTP body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A CORS preflight from `origin` for a POST with Authorization and
/// Content-Type: status and the allowed origin, if any.
pub async fn preflight(url: &str, origin: &str) -> (u16, Option<String>) {
    let (status, origin, _) = preflight_with(url, origin, "authorization, content-type").await;
    (status, origin)
}

/// A CORS preflight asking for `headers`: status, the allowed origin and
/// the allowed headers, if any.
pub async fn preflight_with(
    url: &str,
    origin: &str,
    headers: &str,
) -> (u16, Option<String>, Option<String>) {
    let response = Client::default()
        .request(awc::http::Method::OPTIONS, url)
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", headers))
        .send()
        .await
        .expect("HTTP request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (
        response.status().as_u16(),
        header("access-control-allow-origin"),
        header("access-control-allow-headers"),
    )
}

/// Authenticates with a password and returns (access, refresh) tokens.
pub async fn login(proxy: &TestProxy, username: &str, password: &str) -> (String, String) {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let answer = post(
        &proxy.url("/auth/authenticate"),
        &[("Content-Type", "application/json")],
        body,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    (
        answer.body["jwt"].as_str().unwrap().to_owned(),
        answer.body["jwt_refresh_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// Creates a user with a password who may produce to `produce` (glob
/// patterns) and nothing else, and logs them in: their access token.
pub async fn producer_user(proxy: &TestProxy, name: &str, produce: &[&str]) -> String {
    producer_user_of(&proxy.broker_client().await, proxy, name, produce).await
}

/// [`producer_user`] created through `broker` (a remote proxy's broker).
pub async fn producer_user_of(
    broker: &depot_broker::client::BrokerClient,
    proxy: &TestProxy,
    name: &str,
    produce: &[&str],
) -> String {
    let password = format!("{name}-password");
    broker
        .create_user(depot_schemas::wire::CreateUser {
            name: name.into(),
            password: password.clone(),
            permissions: Some(depot_schemas::wire::Permissions {
                produce: produce.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    login(proxy, name, &password).await.0
}

/// Creates `station` over HTTP with `jwt`'s rights (200 expected).
pub async fn create_station(proxy: &TestProxy, jwt: &str, station: &str) {
    let created = send(
        "POST",
        &proxy.url("/stations"),
        jwt,
        Some(serde_json::json!({ "name": station })),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
}

/// Produces one message to `station` over HTTP with `jwt` and these
/// headers (200 expected).
pub async fn produce_single(
    proxy: &TestProxy,
    jwt: &str,
    station: &str,
    headers: &[(&str, &str)],
    body: &str,
) {
    let auth = format!("Bearer {jwt}");
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    let answer = post(
        &proxy.url(&format!("/stations/{station}/produce/single")),
        &all,
        body.to_owned(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// The `Content-Type` header of a JSON body.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The `Authorization` header carrying `token`.
pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// A user who may produce anywhere and create stations (secrets to add).
pub fn producer_anywhere(name: &str) -> depot_schemas::wire::CreateUser {
    depot_schemas::wire::CreateUser {
        name: name.into(),
        permissions: Some(depot_schemas::wire::Permissions {
            produce: vec!["*".into()],
            create_stations: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}
