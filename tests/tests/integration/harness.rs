//! The shared harness: real broker processes on temporary data directories,
//! real clients, and a raw framed connection for protocol-level tests.
//!
//! Brokers listen on 127.0.0.1 port 0 and report their address on stdout, so
//! tests never pick ports or sleep waiting for one. Broker logs are silent
//! unless `TEST_LOG` is set.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Output, Stdio},
    sync::Arc,
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use depot_broker::client::{BrokerClient, ClientError, ClientResult};
use depot_schemas::{
    FrameCodec,
    wire::{self, ProtocolVersion, Request, Response, request::Op, response::Result as Reply},
};

pub const BROKER_BIN: &str = env!("CARGO_BIN_EXE_depot-broker-under-test");
pub const CLI_BIN: &str = env!("CARGO_BIN_EXE_depot-cli-under-test");
pub const ROOT_PASSWORD: &str = "test-root-password";
/// How long a test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A `depot-broker` child process; killed when dropped.
pub struct TestBroker {
    child: Child,
    pub addr: SocketAddr,
    pub data: Arc<TempDir>,
}

impl TestBroker {
    /// A broker on a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(Arc::new(TempDir::new().expect("temp dir")), &[])
    }

    /// A broker on `data` (a restart when another ran there), with extra flags.
    pub fn start_with(data: Arc<TempDir>, extra_args: &[&str]) -> Self {
        Self::start_on(data, "127.0.0.1:0", extra_args)
    }

    /// A broker on `data` listening on `listen` (to come back on the same
    /// address after a kill).
    pub fn start_on(data: Arc<TempDir>, listen: &str, extra_args: &[&str]) -> Self {
        let mut child = Command::new(BROKER_BIN)
            .arg("--data")
            .arg(data.path())
            .args(["--listen", listen, "--retention-interval", "200ms"])
            .args(extra_args)
            .env("DEPOT_ROOT_PASSWORD", ROOT_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start depot-broker");
        let addr = read_listen_addresses(&mut child, &["depot-broker"])[0];
        Self { child, addr, data }
    }

    /// Restarts on the same data directory after this one is gone.
    pub fn restart(self, extra_args: &[&str]) -> Self {
        let data = self.data.clone();
        drop(self);
        Self::start_with(data, extra_args)
    }

    /// SIGTERM, then waits: the broker shuts down cleanly (final flush).
    /// Returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        self.child.wait().expect("wait for the broker").success()
    }

    /// SIGHUP: read the TLS certificate and key again.
    pub fn hang_up(&self) {
        hang_up(&self.child);
    }

    /// SIGKILL: no shutdown, no final flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn client(&self) -> BrokerClient {
        BrokerClient::connect(self.addr, "root", ROOT_PASSWORD)
            .await
            .expect("connect to test broker")
    }

    /// A raw connection that has completed Hello and Authenticate.
    pub async fn raw_session(&self) -> RawConnection {
        let mut raw = RawConnection::connect(self.addr).await;
        raw.open_session().await;
        raw
    }

    /// Runs the `depot` CLI and returns its output, failing the test if
    /// the command fails.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Runs the `depot` CLI against this broker.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(CLI_BIN)
            .args(args)
            .env("DEPOT_BROKER", self.addr.to_string())
            .env("DEPOT_USER", "root")
            .env("DEPOT_PASSWORD", ROOT_PASSWORD)
            .output()
            .expect("run depot CLI")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `<name> listening on ADDR` lines from a child's stdout, one per
/// name, in order.
pub fn read_listen_addresses(child: &mut Child, names: &[&str]) -> Vec<SocketAddr> {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addresses = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read child stdout");
        let prefix = format!("{} listening on ", names[addresses.len()]);
        if let Some(addr) = line.strip_prefix(&prefix) {
            addresses.push(addr.trim().parse().expect("listen address"));
            if addresses.len() == names.len() {
                // Keep draining stdout so the child never blocks on it.
                std::thread::spawn(move || for _ in lines {});
                return addresses;
            }
        }
    }
    panic!("{names:?} exited before listening");
}

/// A framed connection with no client logic: tests send exactly the frames
/// they mean to.
pub struct RawConnection {
    framed: Framed<TcpStream, FrameCodec<Response, Request>>,
}

impl RawConnection {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self {
            framed: Framed::new(stream, FrameCodec::default()),
        }
    }

    pub async fn open_session(&mut self) {
        let hello = Op::Hello(wire::Hello {
            version: ProtocolVersion::V1 as i32,
            client: "raw-test".into(),
        });
        assert!(matches!(self.call(1, hello).await, Reply::HelloOk(_)));
        let auth = Op::Authenticate(wire::Authenticate {
            username: "root".into(),
            password: ROOT_PASSWORD.into(),
            ..Default::default()
        });
        assert!(matches!(self.call(2, auth).await, Reply::AuthenticateOk(_)));
    }

    pub async fn send(&mut self, id: u64, op: Op) {
        self.framed
            .send(Request {
                id,
                op: Some(op),
                ..Default::default()
            })
            .await
            .expect("send request");
    }

    /// Writes bytes as they are, bypassing the codec.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let stream = self.framed.get_mut();
        stream.write_all(bytes).await.expect("write raw bytes");
        stream.flush().await.expect("flush");
    }

    /// The next response; `None` when the broker closed the connection.
    pub async fn receive(&mut self) -> Option<Response> {
        let next = tokio::time::timeout(PATIENCE, self.framed.next())
            .await
            .expect("broker answered in time");
        match next {
            Some(Ok(Ok(response))) => Some(response),
            Some(Ok(Err(e))) => panic!("undecodable response: {e}"),
            Some(Err(_)) | None => None,
        }
    }

    /// Sends one request and returns its answer's result (asserting the id).
    pub async fn call(&mut self, id: u64, op: Op) -> Reply {
        self.send(id, op).await;
        let response = self.receive().await.expect("an answer");
        assert_eq!(response.id, id, "answer to request {id}: {response:?}");
        response.result.expect("a result")
    }

    /// Waits for no more than `wait` for a frame; `None` if none came.
    pub async fn receive_within(&mut self, wait: Duration) -> Option<Response> {
        match tokio::time::timeout(wait, self.framed.next()).await {
            Ok(Some(Ok(Ok(response)))) => Some(response),
            _ => None,
        }
    }
}

/// The broker's refusal of a call that was to fail: its code and message.
pub fn broker_refusal<T>(result: ClientResult<T>) -> (wire::ErrorCode, String) {
    match result {
        Err(ClientError::Broker { code, message }) => (code, message),
        Err(other) => panic!("expected the broker to refuse, got {other:?}"),
        Ok(_) => panic!("expected the broker to refuse, got success"),
    }
}

/// A user "worker" (password "worker-password") that may produce to,
/// consume from and create every station but is no administrator, and a
/// client connected as it.
pub async fn worker_user(broker: &TestBroker, admin: &BrokerClient) -> BrokerClient {
    admin
        .create_user(wire::CreateUser {
            name: "worker".into(),
            password: "worker-password".into(),
            permissions: Some(wire::Permissions {
                produce: vec!["*".into()],
                consume: vec!["*".into()],
                create_stations: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    BrokerClient::connect(broker.addr, "worker", "worker-password")
        .await
        .unwrap()
}

/// A JSON message for a produce.
pub fn json_message(payload: &str) -> wire::NewMessage {
    wire::NewMessage {
        content_type: "application/json".into(),
        payload: payload.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

/// The stored offset of an outcome, panicking on anything else.
pub fn stored_offset(outcome: &wire::ProduceOutcome) -> u64 {
    match outcome.outcome {
        Some(wire::produce_outcome::Outcome::Offset(offset)) => offset,
        ref other => panic!("expected a stored message, got {other:?}"),
    }
}

/// Reads every message of a station from `from`, in order.
pub async fn fetch_all(
    client: &BrokerClient,
    station: &str,
    from: u64,
) -> Vec<wire::StoredMessage> {
    let mut messages = Vec::new();
    let mut next = from;
    loop {
        let batch = client.fetch(station, next, 1000).await.expect("fetch");
        if batch.messages.is_empty() {
            return messages;
        }
        next = batch.next_offset;
        messages.extend(batch.messages);
    }
}

/// Sends SIGHUP to a child process.
pub fn hang_up(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("send SIGHUP");
}
