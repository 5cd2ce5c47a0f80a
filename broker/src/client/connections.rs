//! WebSocket connection registry operations of [`BrokerClient`]: how a
//! proxy attaches and registers its connections, and how anyone allowed
//! lists and notifies them.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use depot_schemas::wire::{
    self, Request, Response, notify::Target, request::Op, response::Result as Reply,
};

use super::{BrokerClient, ClientError, ClientResult, Waiter, into_reply, unexpected};

/// A proxy's attachment: its id, and the notifications pushed to it.
pub struct Attachment {
    pub id: u64,
    pushes: mpsc::UnboundedReceiver<Response>,
}

impl Attachment {
    /// The next notification; `None` when the connection closed.
    pub async fn next(&mut self) -> Option<ClientResult<wire::Notification>> {
        let response = self.pushes.recv().await?;
        Some(match into_reply(response) {
            Ok(Reply::Notification(notification)) => Ok(notification),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(error),
        })
    }
}

impl BrokerClient {
    /// Attaches this connection's proxy to the registry; it stays attached
    /// (and its registered connections listed) while the connection lives.
    pub async fn attach_proxy(&self, name: &str) -> ClientResult<Attachment> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (pushed, mut pushes) = mpsc::unbounded_channel();
        self.shared.wait_for(id, Waiter::Stream(pushed))?;
        let op = Op::AttachProxy(wire::AttachProxy {
            name: name.to_owned(),
        });
        self.send(Request {
            id,
            op: Some(op),
            ..Default::default()
        })
        .await?;
        let first = pushes.recv().await.ok_or(ClientError::Disconnected);
        match first.and_then(into_reply) {
            Ok(Reply::ProxyAttached(attached)) => Ok(Attachment {
                id: attached.attachment,
                pushes,
            }),
            Ok(other) => Err(unexpected(other)),
            Err(error) => {
                self.forget(id);
                Err(error)
            }
        }
    }

    pub async fn list_connections(&self, user: &str) -> ClientResult<Vec<wire::ConnectionInfo>> {
        let op = Op::ListConnections(wire::ListConnections {
            user: user.to_owned(),
        });
        match self.call(op).await? {
            Reply::ConnectionList(list) => Ok(list.connections),
            other => Err(unexpected(other)),
        }
    }

    /// Notifies a user's connections, or one connection; returns how many
    /// got it.
    pub async fn notify(&self, target: Target, data: Vec<u8>) -> ClientResult<u32> {
        let op = Op::Notify(wire::Notify {
            target: Some(target),
            data: data.into(),
        });
        match self.call(op).await? {
            Reply::Notified(notified) => Ok(notified.delivered),
            other => Err(unexpected(other)),
        }
    }
}
