//! A client-side subscription: yields pushed messages in offset order and
//! grants credit back as they are consumed, so the broker never pushes more
//! than `credit` messages ahead of the reader.

use tokio::sync::mpsc;

use depot_schemas::wire::{self, Request, Response, request::Op, response::Result as Reply};

use super::{BrokerClient, ClientError, ClientResult, into_reply, unexpected};

pub struct Subscription {
    client: BrokerClient,
    id: u64,
    credit: u32,
    /// Consumed since credit was last granted.
    consumed: u32,
    start_offset: u64,
    batches: mpsc::UnboundedReceiver<Response>,
}

impl Subscription {
    pub(super) async fn open(
        client: BrokerClient,
        id: u64,
        credit: u32,
        mut batches: mpsc::UnboundedReceiver<Response>,
    ) -> ClientResult<Self> {
        let first = batches.recv().await.ok_or(ClientError::Disconnected);
        let start_offset = match first.and_then(into_reply) {
            Ok(Reply::SubscribeOk(ok)) => ok.start_offset,
            Ok(other) => return Err(unexpected(other)),
            Err(e) => {
                client.forget(id);
                return Err(e);
            }
        };
        Ok(Self {
            client,
            id,
            credit: credit.max(1),
            consumed: 0,
            start_offset,
            batches,
        })
    }

    /// The offset of the first message this subscription delivers.
    pub fn start_offset(&self) -> u64 {
        self.start_offset
    }

    /// The next pushed batch; `None` when the connection closed.
    pub async fn next_batch(&mut self) -> Option<ClientResult<Vec<wire::StoredMessage>>> {
        let response = self.batches.recv().await?;
        match into_reply(response) {
            Ok(Reply::MessageBatch(batch)) => {
                self.consumed += batch.messages.len() as u32;
                // Top up once half the window is used: the broker keeps
                // pushing while the reader works through the rest.
                if self.consumed >= self.credit / 2 {
                    let grant = std::mem::take(&mut self.consumed);
                    let credit = Op::Credit(wire::Credit {
                        subscription: self.id,
                        messages: grant,
                    });
                    let request = Request {
                        id: 0,
                        op: Some(credit),
                        ..Default::default()
                    };
                    if let Err(e) = self.client.send(request).await {
                        return Some(Err(e));
                    }
                }
                Some(Ok(batch.messages))
            }
            Ok(other) => Some(Err(unexpected(other))),
            Err(e) => Some(Err(e)),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.client.forget(self.id);
        let unsubscribe = Op::Unsubscribe(wire::Unsubscribe {
            subscription: self.id,
        });
        let _ = self.client.shared.requests.try_send(Request {
            id: 0,
            op: Some(unsubscribe),
            ..Default::default()
        });
    }
}
