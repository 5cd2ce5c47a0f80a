//! WebSocket connections across proxies: proxies (administrators) attach
//! and register their connections; administrators list them and notify a
//! user's connections or one connection, wherever they are held.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{
    auth::Principal,
    broker::Broker,
    connections::{ConnectionEntry, Notification, Target},
    error::{BrokerError, BrokerResult},
};

/// Largest notification accepted.
pub const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

impl Broker {
    pub fn attach_proxy(
        &self,
        who: &Principal,
        proxy: String,
    ) -> BrokerResult<(u64, mpsc::Receiver<Notification>)> {
        who.require_admin()?;
        Ok(self.inner.connections.attach(proxy))
    }

    /// The attachment ended (its session closed): its connections go.
    pub fn detach_proxy(&self, attachment: u64) {
        self.inner.connections.detach(attachment);
    }

    pub fn register_connection(
        &self,
        who: &Principal,
        attachment: u64,
        connection: String,
        user: String,
    ) -> BrokerResult<()> {
        who.require_admin()?;
        self.inner
            .connections
            .register(attachment, connection, user)
    }

    pub fn unregister_connection(&self, who: &Principal, connection: &str) -> BrokerResult<()> {
        who.require_admin()?;
        self.inner.connections.unregister(connection);
        Ok(())
    }

    pub fn list_connections(
        &self,
        who: &Principal,
        user: Option<&str>,
    ) -> BrokerResult<Vec<ConnectionEntry>> {
        who.require_admin()?;
        Ok(self.inner.connections.list(user))
    }

    /// Pushes `data` (JSON) to the target's live connections; returns to
    /// how many it was handed.
    pub fn notify(&self, who: &Principal, target: &Target, data: Bytes) -> BrokerResult<usize> {
        who.require_notify()?;
        if data.len() > MAX_NOTIFICATION_BYTES {
            return Err(BrokerError::bad_request(format!(
                "a notification is at most {MAX_NOTIFICATION_BYTES} bytes"
            )));
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_err() {
            return Err(BrokerError::bad_request(
                "a notification's data must be JSON",
            ));
        }
        Ok(self.inner.connections.notify(target, data))
    }
}
