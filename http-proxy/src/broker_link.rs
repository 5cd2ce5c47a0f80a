//! [`BrokerLink`]: what the HTTP handlers need from a broker, with two
//! implementations, so handlers never know which one they run on:
//! - [`EmbeddedBroker`]: the broker runs in this process; calls are direct.
//! - [`RemoteBroker`]: a `depot-broker` elsewhere, reached over the wire
//!   protocol through a few pipelined connections, reconnected with backoff.
//!   While it is unreachable, calls fail fast with [`LinkError::Unavailable`].
//!
//! Messages travel as wire types (the contract both sides already share).

mod embedded;
mod remote;

use std::sync::Arc;

use futures::future::BoxFuture;

use depot_broker::client::Secret;
use depot_schemas::wire::{
    ConsumeToken, ErrorCode, NewMessage, Notification, ProduceOutcome, StoredMessage, request::Op,
    response::Result as Reply,
};

pub use embedded::{BrokerSlot, EmbeddedBroker};
pub use remote::RemoteBroker;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The broker cannot be reached now; the request may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// The broker refused the request.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
}

pub type LinkResult<T> = Result<T, LinkError>;

/// Whom a call is made for: a user, and the session it comes from when a
/// token brought it. The broker checks the user's permissions on every
/// call and refuses a session begun before the user's sessions were ended
/// (a new password or connection token, a logout), so the old tokens are
/// locked out at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub user: String,
    /// The access token's issue time (ms); `None` for the proxy's own
    /// calls, which no token brought.
    pub session_issued_at_ms: Option<u64>,
    /// The HTTP client's address (its TCP peer), for the audit trail;
    /// `None` for the proxy's own calls.
    pub address: Option<String>,
}

impl Caller {
    /// The user of a verified access token, in that token's session.
    pub fn of_token(claims: &crate::tokens::Claims) -> Self {
        Self {
            user: claims.sub.clone(),
            session_issued_at_ms: Some(claims.issued_at_ms()),
            address: None,
        }
    }

    /// This caller, calling from `address`.
    pub fn from_address(self, address: Option<std::net::SocketAddr>) -> Self {
        Self {
            address: address.map(|address| address.to_string()),
            ..self
        }
    }

    /// The proxy itself, acting as `user` with no token (root's
    /// housekeeping: the connection registry, readiness).
    pub fn internal(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            session_issued_at_ms: None,
            address: None,
        }
    }

    /// How the wire client names this caller.
    pub fn acting_for(&self) -> depot_broker::client::ActingFor<'_> {
        depot_broker::client::ActingFor {
            user: &self.user,
            session_issued_at_ms: self.session_issued_at_ms.unwrap_or(0),
            client_address: self.address.as_deref().unwrap_or(""),
        }
    }
}

pub trait BrokerLink: Send + Sync {
    /// Checks a user's secret; Ok means the user may be given tokens.
    fn authenticate(&self, username: String, secret: Secret) -> BoxFuture<'_, LinkResult<()>>;

    /// Produces as `caller` (whose permissions apply), in one round trip.
    fn produce(
        &self,
        caller: Caller,
        station: String,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, LinkResult<Vec<ProduceOutcome>>>;

    /// The key that signs this deployment's tokens (shared by every proxy).
    fn signing_key(&self) -> BoxFuture<'_, LinkResult<Vec<u8>>>;

    /// Marks a refresh token used; false if it was used before; refused
    /// when its user no longer exists or changed credentials since.
    fn consume_token(&self, token: ConsumeToken) -> BoxFuture<'_, LinkResult<bool>>;

    /// Whether the broker answers now.
    fn ready(&self) -> BoxFuture<'_, bool>;

    /// Follows `station` as `caller` (whose consume right applies) from
    /// `from`: answers with the first offset it will push, then pushes batches into `into`, in offset order, until
    /// `into` is closed or an error ends it (sent as the last item). The
    /// bounded `into` is the backpressure: nothing is read ahead of it.
    fn follow(
        &self,
        caller: Caller,
        station: String,
        from: FollowFrom,
        into: FollowSender,
    ) -> BoxFuture<'_, LinkResult<u64>>;

    /// Attaches this proxy to the broker's WebSocket connection registry:
    /// answers with the attachment's id, then pushes the notifications for
    /// this proxy's connections into `into` while the attachment lasts (it
    /// ends with the broker session; `into` is then dropped).
    fn attach(&self, name: String, into: NotificationSender) -> BoxFuture<'_, LinkResult<u64>>;

    /// Runs one wire operation (schemas, dead letters) as `caller`, whose
    /// permissions the broker checks. A refusal is an `Err`, never an
    /// error reply.
    fn call_as(&self, caller: Caller, op: Op) -> BoxFuture<'_, LinkResult<Reply>>;
}

pub type SharedLink = Arc<dyn BrokerLink>;

/// Where [`BrokerLink::attach`] pushes.
pub type NotificationSender = tokio::sync::mpsc::Sender<Notification>;

/// Where [`BrokerLink::follow`] starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowFrom {
    /// New messages only.
    Latest,
    Offset(u64),
    /// Where this consumer left off (its committed position; the oldest
    /// message when it has none yet).
    Consumer(String),
}

/// An offset, or new messages only.
impl From<Option<u64>> for FollowFrom {
    fn from(offset: Option<u64>) -> Self {
        offset.map_or(Self::Latest, Self::Offset)
    }
}

impl FollowFrom {
    /// As a wire subscription's start.
    pub fn to_wire(&self) -> depot_schemas::wire::subscribe::Start {
        use depot_schemas::wire::subscribe::Start;
        match self {
            Self::Latest => Start::Latest(true),
            Self::Offset(offset) => Start::FromOffset(*offset),
            Self::Consumer(consumer) => Start::Consumer(consumer.clone()),
        }
    }
}

/// Where [`BrokerLink::follow`] pushes.
pub type FollowSender = tokio::sync::mpsc::Sender<LinkResult<Vec<StoredMessage>>>;
