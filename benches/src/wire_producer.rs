//! [`FrameProducer`]: the leanest correct wire-protocol producer. One
//! connection, one task: it writes a Produce request, reads its answer and
//! checks that every message was stored, then the next. No pipelining, so
//! none of [`BrokerClient`]'s machinery (a writer task, a reader task, a
//! table of waiting callers).
//!
//! Why the benchmark has it: on a 2-core machine the load generator shares
//! the cores with the broker, so its own cost per request lowers the
//! broker's figure. The loopback ceiling is measured with a producer this
//! lean ([`crate::bare_tcp::EchoProducer`]); measuring the broker with one
//! too compares like with like. `--single-client depot` measures with
//! [`BrokerClient`] instead.
//!
//! [`BrokerClient`]: depot_broker::client::BrokerClient

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use depot_schemas::{
    FrameCodec,
    wire::{self, ProtocolVersion, Request, Response, request::Op, response::Result as Reply},
};

use crate::closed_loop::Producer;

/// Produces `messages` per request to one station over its own connection.
pub struct FrameProducer {
    framed: Framed<TcpStream, FrameCodec<Response, Request>>,
    station: String,
    messages: Vec<wire::NewMessage>,
    next_id: u64,
}

impl FrameProducer {
    /// Connects, says hello and authenticates as `username`.
    pub async fn connect(
        addr: &str,
        username: &str,
        password: &str,
        station: &str,
        messages: Vec<wire::NewMessage>,
    ) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach the broker at {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut producer = Self {
            framed: Framed::new(stream, FrameCodec::default()),
            station: station.to_owned(),
            messages,
            next_id: 1,
        };
        let hello = wire::Hello {
            version: ProtocolVersion::V1 as i32,
            client: "depot-bench".to_owned(),
        };
        match producer.call(Op::Hello(hello)).await? {
            Reply::HelloOk(_) => {}
            other => return Err(format!("expected HelloOk, got {other:?}")),
        }
        let credentials = wire::Authenticate {
            username: username.to_owned(),
            password: password.to_owned(),
            connection_token: String::new(),
        };
        match producer.call(Op::Authenticate(credentials)).await? {
            Reply::AuthenticateOk(_) => Ok(producer),
            other => Err(format!("expected AuthenticateOk, got {other:?}")),
        }
    }

    /// Sends one request and reads its answer; a broker error is an error.
    async fn call(&mut self, op: Op) -> Result<Reply, String> {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request {
            id,
            op: Some(op),
            ..Default::default()
        };
        self.framed
            .send(request)
            .await
            .map_err(|e| format!("sending to the broker failed: {e}"))?;
        let response = self
            .framed
            .next()
            .await
            .ok_or("the broker closed the connection")?
            .map_err(|e| format!("reading from the broker failed: {e}"))?
            .map_err(|e| format!("the broker's answer does not decode: {e}"))?;
        if response.id != id {
            return Err(format!("answer {} for request {id}", response.id));
        }
        match response.result {
            Some(Reply::Error(error)) => Err(format!("the broker refused: {}", error.message)),
            Some(reply) => Ok(reply),
            None => Err(format!("an empty answer to request {id}")),
        }
    }
}

impl Producer for FrameProducer {
    async fn round_trip(&mut self) -> Result<u64, String> {
        let op = Op::Produce(wire::Produce {
            station: self.station.clone(),
            messages: self.messages.clone(),
            on_behalf_of: String::new(),
        });
        let Reply::ProduceResult(result) = self.call(op).await? else {
            return Err("a produce was not answered with its result".to_owned());
        };
        let stored = result
            .outcomes
            .iter()
            .filter(|outcome| outcome.is_stored())
            .count();
        if stored != self.messages.len() {
            return Err(format!(
                "{stored} of {} messages stored: {:?}",
                self.messages.len(),
                result.outcomes
            ));
        }
        Ok(stored as u64)
    }
}
