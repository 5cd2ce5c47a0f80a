//! [`BrokerClient`]: an async client of the wire protocol, used by the `depot`
//! CLI, the benchmarks and the HTTP proxy.
//!
//! One TCP connection, pipelined: every call takes a fresh request id, the
//! writer task sends it, and the reader task routes each answer to its caller
//! by id, so any number of calls can be in flight at once from clones of one
//! client. Subscriptions receive pushed batches on their own channel and
//! grant credit back as they consume.

mod connections;
mod consumers;
mod produce;
mod schemas;
mod subscription;
mod webhooks;

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpStream, ToSocketAddrs},
    sync::{mpsc, oneshot},
};
use tokio_util::codec::{FramedRead, FramedWrite};

use depot_schemas::{
    DEFAULT_MAX_FRAME_BYTES, FrameCodec,
    wire::{
        self, ErrorCode, ProtocolVersion, Request, Response, request::Op, response::Result as Reply,
    },
};

pub use connections::Attachment;
pub use subscription::Subscription;

pub use crate::auth::Secret;

/// Where a client connects: `host:port`, and how to check the broker's
/// certificate when the wire runs over TLS.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: String,
    pub tls: Option<crate::tls::ClientTls>,
}

impl Endpoint {
    /// As the flags say: TLS when asked for (`web_pki`) or when a CA file
    /// is given, checking the broker against that file's certificates, or
    /// else the web PKI roots.
    pub fn from_flags(address: String, web_pki: bool, ca: Option<&Path>) -> Result<Self, String> {
        let tls = (web_pki || ca.is_some())
            .then(|| crate::tls::ClientTls::new(ca))
            .transpose()?;
        Ok(Self { address, tls })
    }
}

/// Whom a request acts for, when not simply the connection's user.
///
/// `user`: another user, whose permissions apply (the connection must be an
/// administrator's); empty: the connection's own user. And, for requests an
/// HTTP proxy makes for a token, when that token was issued
/// (`session_issued_at_ms`, 0: no session): the broker refuses a session
/// begun before the user's sessions were ended (a new password or
/// connection token, a logout). And the network address of the client it
/// acts for (`client_address`, empty: none), for the audit trail. A user
/// name alone converts into one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActingFor<'a> {
    pub user: &'a str,
    pub session_issued_at_ms: u64,
    pub client_address: &'a str,
}

impl<'a> From<&'a str> for ActingFor<'a> {
    fn from(user: &'a str) -> Self {
        Self {
            user,
            ..Default::default()
        }
    }
}

/// A TCP connection to `address`, without Nagle's delay (requests are
/// small and answered one by one).
async fn dial(address: impl ToSocketAddrs) -> ClientResult<TcpStream> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(ClientError::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Requests queued for the writer task.
const SEND_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the broker: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the connection to the broker closed")]
    Disconnected,
    #[error("{message}")]
    Broker { code: ErrorCode, message: String },
    #[error("unexpected answer from the broker: {0}")]
    Protocol(String),
}

pub type ClientResult<T> = Result<T, ClientError>;

enum Waiter {
    Once(oneshot::Sender<Response>),
    Stream(mpsc::UnboundedSender<Response>),
}

struct Shared {
    requests: mpsc::Sender<Request>,
    /// Callers waiting for answers, by request id; `None` once the
    /// connection is gone, so that no caller can start waiting after the
    /// reader has given up (it would wait forever).
    waiters: Mutex<Option<HashMap<u64, Waiter>>>,
    next_id: AtomicU64,
    /// The largest frame the broker reads, from its `HelloOk`: produces are
    /// split to fit (`produce.rs`).
    max_frame: AtomicUsize,
}

impl Shared {
    fn wait_for(&self, id: u64, waiter: Waiter) -> ClientResult<()> {
        match self.waiters.lock().as_mut() {
            Some(waiters) => {
                waiters.insert(id, waiter);
                Ok(())
            }
            None => Err(ClientError::Disconnected),
        }
    }
}

/// A connected, authenticated client; clones share the connection.
#[derive(Clone)]
pub struct BrokerClient {
    shared: Arc<Shared>,
}

impl BrokerClient {
    /// Connects, performs the version handshake and authenticates.
    pub async fn connect(
        address: impl ToSocketAddrs,
        username: &str,
        password: &str,
    ) -> ClientResult<Self> {
        Self::connect_with(address, username, Secret::Password(password.to_owned())).await
    }

    /// [`BrokerClient::connect`] with a password or a connection token.
    pub async fn connect_with(
        address: impl ToSocketAddrs,
        username: &str,
        secret: Secret,
    ) -> ClientResult<Self> {
        Self::over(dial(address).await?)
            .open(username, secret)
            .await
    }

    /// Connects to `endpoint`, over TLS when it says so, and opens the
    /// session as [`BrokerClient::connect_with`] does.
    pub async fn connect_to(
        endpoint: &Endpoint,
        username: &str,
        secret: Secret,
    ) -> ClientResult<Self> {
        let Some(tls) = &endpoint.tls else {
            return Self::connect_with(endpoint.address.as_str(), username, secret).await;
        };
        let stream = dial(endpoint.address.as_str()).await?;
        let session = tls
            .connect(&endpoint.address, stream)
            .await
            .map_err(ClientError::Connect)?;
        Self::over_halves(tokio::io::split(session))
            .open(username, secret)
            .await
    }

    /// The version handshake and authentication.
    async fn open(self, username: &str, secret: Secret) -> ClientResult<Self> {
        let client = self;
        let hello = wire::Hello {
            version: ProtocolVersion::V1 as i32,
            client: concat!("depot-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        match client.call(Op::Hello(hello)).await? {
            // The reader has taken the broker's frame limit from it.
            Reply::HelloOk(_) => {}
            other => return Err(unexpected(other)),
        }
        let (password, connection_token) = match secret {
            Secret::Password(password) => (password, String::new()),
            Secret::ConnectionToken(token) => (String::new(), token),
        };
        let credentials = wire::Authenticate {
            username: username.to_owned(),
            password,
            connection_token,
        };
        match client.call(Op::Authenticate(credentials)).await? {
            Reply::AuthenticateOk(_) => Ok(client),
            other => Err(unexpected(other)),
        }
    }

    /// Wraps a connected stream without any handshake (for tests of the
    /// protocol's session rules).
    pub fn over(stream: TcpStream) -> Self {
        Self::over_halves(stream.into_split())
    }

    fn over_halves(
        (read_half, write_half): (
            impl AsyncRead + Unpin + Send + 'static,
            impl AsyncWrite + Unpin + Send + 'static,
        ),
    ) -> Self {
        let (requests, queue) = mpsc::channel(SEND_QUEUE);
        let shared = Arc::new(Shared {
            requests,
            waiters: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
            max_frame: AtomicUsize::new(DEFAULT_MAX_FRAME_BYTES),
        });
        // Requests come from callers' tasks, which run before the writer
        // they wake: they are already queued when it runs.
        // The writer's codec takes any frame the length prefix can carry:
        // requests are kept within the broker's limit before they are sent
        // (it is learned from HelloOk, after this writer exists).
        tokio::spawn(crate::frames::write_queued(
            FramedWrite::new(
                write_half,
                FrameCodec::<Response, Request>::new(u32::MAX as usize),
            ),
            queue,
            || false,
        ));
        // The reader holds the shared state weakly: when the last client
        // handle is dropped, the request queue closes, the writer ends and
        // shuts the socket, and the connection goes away instead of leaking.
        tokio::spawn(route_answers(
            FramedRead::new(read_half, FrameCodec::<Response, Request>::default()),
            Arc::downgrade(&shared),
        ));
        Self { shared }
    }

    /// Whether the connection is gone (the broker closed it or died).
    pub fn is_closed(&self) -> bool {
        self.shared.waiters.lock().is_none()
    }

    /// Whether two clients share one connection.
    pub fn same_connection(&self, other: &BrokerClient) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Sends one operation and waits for its answer; a broker error becomes
    /// [`ClientError::Broker`].
    pub async fn call(&self, op: Op) -> ClientResult<Reply> {
        self.start(op).await?.await
    }

    /// [`call`](Self::call) for another user (administrators only), whose
    /// permissions apply; see [`ActingFor`]. Empty means as this
    /// connection's user.
    pub async fn call_as<'a>(
        &self,
        op: Op,
        acting_for: impl Into<ActingFor<'a>>,
    ) -> ClientResult<Reply> {
        let acting_for = acting_for.into();
        let (id, answer) = self.register_once()?;
        self.send(Request {
            id,
            op: Some(op),
            on_behalf_of: acting_for.user.to_owned(),
            session_issued_at_ms: acting_for.session_issued_at_ms,
            client_address: acting_for.client_address.to_owned(),
        })
        .await?;
        let response = answer.await.map_err(|_| ClientError::Disconnected)?;
        into_reply(response)
    }

    /// Sends one operation and returns the wait for its answer. Operations
    /// started one after another reach the broker in that order, even when
    /// their answers are awaited together.
    pub async fn start(
        &self,
        op: Op,
    ) -> ClientResult<impl Future<Output = ClientResult<Reply>> + use<>> {
        self.start_in_session(op, 0).await
    }

    /// [`start`](Self::start) for a request from a session begun at
    /// `session_issued_at_ms` (see [`ActingFor`]; 0: none).
    async fn start_in_session(
        &self,
        op: Op,
        session_issued_at_ms: u64,
    ) -> ClientResult<impl Future<Output = ClientResult<Reply>> + use<>> {
        let (id, answer) = self.register_once()?;
        self.send(Request {
            id,
            op: Some(op),
            session_issued_at_ms,
            ..Default::default()
        })
        .await?;
        Ok(async move {
            let response = answer.await.map_err(|_| ClientError::Disconnected)?;
            into_reply(response)
        })
    }

    pub async fn ping(&self) -> ClientResult<()> {
        match self.call(Op::Ping(wire::Ping::default())).await? {
            Reply::Pong(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a station without a description.
    pub async fn create_station(
        &self,
        name: &str,
        settings: wire::StationSettings,
    ) -> ClientResult<wire::StationInfo> {
        self.create_station_with(wire::CreateStation {
            name: name.to_owned(),
            settings: Some(settings),
            description: String::new(),
        })
        .await
    }

    pub async fn create_station_with(
        &self,
        create: wire::CreateStation,
    ) -> ClientResult<wire::StationInfo> {
        expect_station(self.call(Op::CreateStation(create)).await?)
    }

    /// Changes the settings given, leaving the description.
    pub async fn update_station(
        &self,
        name: &str,
        settings: wire::StationSettings,
    ) -> ClientResult<wire::StationInfo> {
        self.update_station_with(wire::UpdateStation {
            name: name.to_owned(),
            settings: Some(settings),
            description: None,
        })
        .await
    }

    pub async fn update_station_with(
        &self,
        update: wire::UpdateStation,
    ) -> ClientResult<wire::StationInfo> {
        expect_station(self.call(Op::UpdateStation(update)).await?)
    }

    pub async fn describe_station(&self, name: &str) -> ClientResult<wire::StationInfo> {
        let op = Op::DescribeStation(wire::DescribeStation {
            name: name.to_owned(),
        });
        expect_station(self.call(op).await?)
    }

    pub async fn delete_station(&self, name: &str) -> ClientResult<()> {
        let op = Op::DeleteStation(wire::DeleteStation {
            name: name.to_owned(),
        });
        match self.call(op).await? {
            Reply::Done(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Removes the station's messages below `before` (`None`: every one
    /// stored now); the station, its offsets and consumers stay.
    pub async fn purge_station(
        &self,
        name: &str,
        before: Option<u64>,
    ) -> ClientResult<wire::Purged> {
        let op = Op::PurgeStation(wire::PurgeStation {
            name: name.to_owned(),
            before_offset: before,
        });
        match self.call(op).await? {
            Reply::Purged(purged) => Ok(purged),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_stations(&self) -> ClientResult<Vec<wire::StationInfo>> {
        match self.call(Op::ListStations(wire::ListStations {})).await? {
            Reply::StationList(list) => Ok(list.stations),
            other => Err(unexpected(other)),
        }
    }

    pub async fn create_user(&self, user: wire::CreateUser) -> ClientResult<wire::UserInfo> {
        match self.call(Op::CreateUser(user)).await? {
            Reply::User(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    pub async fn update_user(&self, change: wire::UpdateUser) -> ClientResult<wire::UserInfo> {
        match self.call(Op::UpdateUser(change)).await? {
            Reply::User(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_user(&self, name: &str) -> ClientResult<()> {
        let op = Op::DeleteUser(wire::DeleteUser {
            name: name.to_owned(),
        });
        match self.call(op).await? {
            Reply::Done(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Ends every session of `user` begun until now (see
    /// [`wire::EndSessions`]).
    pub async fn end_sessions(&self, user: &str) -> ClientResult<()> {
        let op = Op::EndSessions(wire::EndSessions {
            user: user.to_owned(),
        });
        match self.call(op).await? {
            Reply::Done(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_users(&self) -> ClientResult<Vec<wire::UserInfo>> {
        match self.call(Op::ListUsers(wire::ListUsers {})).await? {
            Reply::UserList(list) => Ok(list.users),
            other => Err(unexpected(other)),
        }
    }

    /// The key that signs the HTTP proxies' tokens (administrators only).
    pub async fn signing_key(&self) -> ClientResult<wire::SigningKey> {
        match self.call(Op::GetSigningKey(wire::GetSigningKey {})).await? {
            Reply::SigningKey(key) => Ok(key),
            other => Err(unexpected(other)),
        }
    }

    /// Marks a single-use token as used; false if it had been. Refused when
    /// its user is gone or changed credentials after `issued_at_ms`.
    pub async fn consume_token(&self, token: wire::ConsumeToken) -> ClientResult<bool> {
        match self.call(Op::ConsumeToken(token)).await? {
            Reply::TokenConsumed(consumed) => Ok(consumed.first_use),
            other => Err(unexpected(other)),
        }
    }

    pub async fn fetch(
        &self,
        station: &str,
        from_offset: u64,
        max_messages: u32,
    ) -> ClientResult<wire::FetchResult> {
        self.fetch_waiting(station, from_offset, max_messages, Duration::ZERO)
            .await
    }

    /// [`fetch`](Self::fetch) as a long poll: when nothing is stored at
    /// `from_offset` yet, the broker waits up to `wait` (at most its
    /// `--max-fetch-wait`) for a message to land there; the answer may
    /// still be empty.
    pub async fn fetch_waiting(
        &self,
        station: &str,
        from_offset: u64,
        max_messages: u32,
        wait: Duration,
    ) -> ClientResult<wire::FetchResult> {
        self.fetch_with(wire::Fetch {
            station: station.to_owned(),
            from_offset,
            max_messages,
            max_wait_ms: wait_ms(wait),
            ..Default::default()
        })
        .await
    }

    /// Any fetch, as the request says.
    pub async fn fetch_with(&self, fetch: wire::Fetch) -> ClientResult<wire::FetchResult> {
        match self.call(Op::Fetch(fetch)).await? {
            Reply::FetchResult(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    /// Follows a station from `start` (`None`: only new messages).
    pub async fn subscribe(
        &self,
        station: &str,
        start: Option<u64>,
        credit: u32,
    ) -> ClientResult<Subscription> {
        self.subscribe_as(station, start, credit, "").await
    }

    /// [`BrokerClient::subscribe`] for another user (see [`ActingFor`];
    /// empty: this connection's user), whose consume right applies.
    pub async fn subscribe_as<'a>(
        &self,
        station: &str,
        start: Option<u64>,
        credit: u32,
        acting_for: impl Into<ActingFor<'a>>,
    ) -> ClientResult<Subscription> {
        let start = match start {
            Some(offset) => wire::subscribe::Start::FromOffset(offset),
            None => wire::subscribe::Start::Latest(true),
        };
        self.subscribe_from(station, start, credit, acting_for)
            .await
    }

    /// Follows a station from `start` (an offset, the newest message or a
    /// consumer's position), for `acting_for`.
    pub async fn subscribe_from<'a>(
        &self,
        station: &str,
        start: wire::subscribe::Start,
        credit: u32,
        acting_for: impl Into<ActingFor<'a>>,
    ) -> ClientResult<Subscription> {
        let acting_for = acting_for.into();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (pushed, batches) = mpsc::unbounded_channel();
        self.shared.wait_for(id, Waiter::Stream(pushed))?;
        let op = Op::Subscribe(wire::Subscribe {
            station: station.to_owned(),
            start: Some(start),
            initial_credit: credit,
            on_behalf_of: acting_for.user.to_owned(),
        });
        self.send(Request {
            id,
            op: Some(op),
            session_issued_at_ms: acting_for.session_issued_at_ms,
            ..Default::default()
        })
        .await?;
        Subscription::open(self.clone(), id, credit, batches).await
    }

    /// Sends a request that has no answer (credit).
    async fn send(&self, request: Request) -> ClientResult<()> {
        self.shared
            .requests
            .send(request)
            .await
            .map_err(|_| ClientError::Disconnected)
    }

    fn register_once(&self) -> ClientResult<(u64, oneshot::Receiver<Response>)> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.shared.wait_for(id, Waiter::Once(sender))?;
        Ok((id, receiver))
    }

    fn forget(&self, id: u64) {
        if let Some(waiters) = self.shared.waiters.lock().as_mut() {
            waiters.remove(&id);
        }
    }
}

async fn route_answers(
    mut frames: FramedRead<impl AsyncRead + Unpin, FrameCodec<Response, Request>>,
    shared: Weak<Shared>,
) {
    while let Some(Ok(Ok(response))) = frames.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some(Reply::HelloOk(ok)) = &response.result
            && let Ok(max_frame @ 1..) = usize::try_from(ok.max_frame_bytes)
        {
            // Produces are split to fit it (`produce.rs`), and answers come
            // up to it, which may be above the default this reader started
            // with. Taken here, before the caller of Hello hears the answer.
            shared.max_frame.store(max_frame, Ordering::Relaxed);
            frames
                .decoder_mut()
                .set_max_frame_bytes(max_frame.max(DEFAULT_MAX_FRAME_BYTES));
        }
        let id = response.id;
        let mut waiters = shared.waiters.lock();
        let Some(waiters) = waiters.as_mut() else {
            return;
        };
        match waiters.get(&id) {
            Some(Waiter::Stream(stream)) => {
                if stream.send(response).is_err() {
                    waiters.remove(&id);
                }
            }
            Some(Waiter::Once(_)) => {
                if let Some(Waiter::Once(once)) = waiters.remove(&id) {
                    let _ = once.send(response);
                }
            }
            None => {
                if let Some(Reply::Error(error)) = response.result {
                    tracing::warn!(id = response.id, message = %error.message, "broker error");
                }
            }
        }
    }
    // Dropping every waiter tells each caller the connection is gone, and
    // `None` refuses new ones.
    if let Some(shared) = shared.upgrade() {
        shared.waiters.lock().take();
    }
}

fn into_reply(response: Response) -> ClientResult<Reply> {
    match response.result {
        Some(Reply::Error(error)) => Err(ClientError::Broker {
            code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified),
            message: error.message,
        }),
        Some(reply) => Ok(reply),
        None => Err(ClientError::Protocol("an answer without a result".into())),
    }
}

fn expect_station(reply: Reply) -> ClientResult<wire::StationInfo> {
    match reply {
        Reply::Station(info) => Ok(info),
        other => Err(unexpected(other)),
    }
}

/// A fetch's wait as the wire's milliseconds (a longer one is cut by the
/// broker anyway).
fn wait_ms(wait: Duration) -> u32 {
    u32::try_from(wait.as_millis()).unwrap_or(u32::MAX)
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("{reply:?}"))
}
