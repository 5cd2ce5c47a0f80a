//! The wire-protocol server: accepts TCP connections and serves each on one
//! of the broker's worker threads (actix arbiters, shared with the station
//! actors), so decoding, encoding and reads run in parallel across cores.
//!
//! - [`connection`]: one connection's session and pipelined requests.
//! - [`operations`]: request/response operations, each calling the core.
//! - [`subscription`]: credit-based pushes to subscribers.
//! - [`convert`]: wire <-> domain conversions and error codes.
//! - [`schema_operations`], [`webhook_operations`],
//!   [`connection_operations`]: the schema, webhook and WebSocket registry
//!   operations.
//! - [`metrics_http`]: `/metrics` over HTTP (`--metrics-listen`).

pub mod audited;
pub mod connection;
pub mod connection_operations;
pub mod consumer_operations;
pub mod convert;
pub mod metrics_http;
pub mod operations;
pub mod schema_operations;
pub mod subscription;
pub mod webhook_operations;

use std::{net::SocketAddr, sync::Arc};

use futures::SinkExt;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tokio_rustls::TlsAcceptor;
use tokio_util::{codec::FramedWrite, sync::CancellationToken};

use depot_schemas::{
    FrameCodec,
    wire::{ErrorCode, Request, Response, response::Result as Reply},
};

use crate::{broker::Broker, refusals::Limit};

/// A running wire server; dropping it does not stop it, [`WireServer::stop`]
/// does.
pub struct WireServer {
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
    /// Cancelled to close every connection (the worker threads are the
    /// broker's and outlive the server).
    closing: CancellationToken,
}

impl WireServer {
    /// Serves `listener` (already bound, so tests can bind port 0 and learn
    /// the port first). Must run inside an actix system.
    pub fn start(broker: Broker, listener: std::net::TcpListener) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let options = &broker.config().options;
        let tls = match (&options.wire_tls_cert, &options.wire_tls_key) {
            (Some(cert), Some(key)) => Some(TlsAcceptor::from(Arc::new(
                crate::tls::server_config(cert, key)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ))),
            _ => None,
        };
        let closing = CancellationToken::new();
        let accept = actix_rt::spawn(accept_loop(listener, tls, broker, closing.clone()));
        Ok(Self {
            local_addr,
            accept,
            closing,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection.
    pub fn stop(self) {
        self.accept.abort();
        self.closing.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    broker: Broker,
    closing: CancellationToken,
) {
    let workers = broker.workers();
    let slots = Arc::new(Semaphore::new(broker.config().options.max_connections));
    let mut next_worker = 0;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            broker.refusals().count(Limit::MaxConnections);
            actix_rt::spawn(refuse(stream, broker.config().options.max_connections));
            continue;
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let broker = broker.clone();
        let closing = closing.child_token();
        let tls = tls.clone();
        let worker = &workers[next_worker % workers.len()];
        next_worker += 1;
        let counted = Counted::new(broker.wire_connections().clone());
        worker.spawn(async move {
            let _counted = counted;
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => return tracing::warn!(%error, "cannot adopt connection"),
            };
            match tls {
                None => {
                    let halves = stream.into_split();
                    connection::serve(halves, Some(peer), broker, slot, closing).await;
                }
                Some(tls) => {
                    let Some(session) = tls_handshake(&tls, stream, &broker, peer).await else {
                        return;
                    };
                    let halves = tokio::io::split(session);
                    connection::serve(halves, Some(peer), broker, slot, closing).await;
                }
            }
        });
    }
}

/// Counts a connection in a gauge for as long as it lives.
struct Counted(prometheus::IntGauge);

impl Counted {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The TLS session of a new connection, within the handshake deadline;
/// `None` (and the connection dropped) when it fails or takes too long.
async fn tls_handshake(
    tls: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    broker: &Broker,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let deadline = broker.config().options.handshake_timeout;
    let handshake = tls.accept(stream);
    let finished = if deadline.is_zero() {
        Ok(handshake.await)
    } else {
        tokio::time::timeout(deadline, handshake).await
    };
    match finished {
        Ok(Ok(session)) => Some(session),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not finished in time; closing");
            broker.refusals().count(Limit::HandshakeTimeout);
            None
        }
    }
}

/// Tells a client over the connection limit why it is being closed.
async fn refuse(stream: tokio::net::TcpStream, limit: usize) {
    let mut sink = FramedWrite::new(stream, FrameCodec::<Request, Response>::default());
    let error = crate::server::convert::error(
        ErrorCode::LimitExceeded,
        format!("the broker is at its limit of {limit} connections"),
    );
    let _ = sink
        .send(Response {
            id: 0,
            result: Some(Reply::Error(error)),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{broker::TEST_ROOT_PASSWORD, client::BrokerClient};

    #[actix_rt::test]
    async fn stopping_closes_open_connections_and_the_broker_runs_on() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open_for_test(dir.path(), |_| {});
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = WireServer::start(broker.clone(), listener).unwrap();
        let address = server.local_addr();
        let client = BrokerClient::connect(address, "root", TEST_ROOT_PASSWORD)
            .await
            .unwrap();
        client.ping().await.unwrap();

        server.stop();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !client.is_closed() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the connection stayed open after stop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(client.ping().await.is_err());
        assert!(
            BrokerClient::connect(address, "root", TEST_ROOT_PASSWORD)
                .await
                .is_err(),
            "a stopped server accepts nothing"
        );
        // The worker threads are the broker's: its stations still take
        // messages after the server is gone.
        let root = broker.principal("root").unwrap();
        let message = crate::station::NewMessage {
            content_type: "text/plain".into(),
            payload: "still here".into(),
            ..Default::default()
        };
        broker
            .produce(&root, "after-stop", vec![message])
            .await
            .unwrap();
        broker.shutdown();
    }
}
