//! The broker's one error type. Expected refusals (a bad name, a missing
//! station, an oversize message) are variants with context; storage failures
//! are kept apart in [`BrokerError::Storage`]. The mapping to wire error codes
//! lives in one place, `server::convert`.

/// The rule station names must follow, quoted in errors.
pub const STATION_NAME_RULE: &str = "^[a-z0-9][a-z0-9._-]{0,127}$";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid station name '{name}': a station name must match {STATION_NAME_RULE}")]
    InvalidStationName { name: String },

    #[error("station not found: {name}")]
    StationNotFound { name: String },

    #[error("station already exists: {name}")]
    StationExists { name: String },

    #[error("invalid schema name '{name}': a schema name must match {STATION_NAME_RULE}")]
    InvalidSchemaName { name: String },

    #[error("schema not found: {name}")]
    SchemaNotFound { name: String },

    #[error("schema {name} has no version {version}")]
    SchemaVersionNotFound { name: String, version: u32 },

    #[error("schema already exists: {name}")]
    SchemaExists { name: String },

    #[error("the schema does not compile: {reason}")]
    InvalidSchema { reason: String },

    #[error("schema {name} is attached to stations {}; detach it first", stations.join(", "))]
    SchemaInUse { name: String, stations: Vec<String> },

    #[error("subscription not found: {subscription}")]
    SubscriptionNotFound { subscription: String },

    #[error("delivery not found: {id}")]
    DeliveryNotFound { id: String },

    #[error("consumer {consumer} has no position in station {station}")]
    ConsumerNotFound { station: String, consumer: String },

    #[error("dead letter {id} not found in station {station}")]
    DeadLetterNotFound { station: String, id: u64 },

    /// A message was refused (schema, size); its producer is told why.
    #[error("{0}")]
    Rejected(crate::station::RejectReason),

    #[error("bad request: {reason}")]
    BadRequest { reason: String },

    #[error("authentication failed: wrong username or password")]
    BadCredentials,

    #[error(
        "the session is over: the token was issued before the user's password or connection token changed or its sessions were ended; authenticate again"
    )]
    TokenRevoked,

    #[error("permission denied: {reason}")]
    PermissionDenied { reason: String },

    #[error("storage failure: {0}")]
    Storage(#[from] sled::Error),

    #[error(
        "the data directory {path} is in use by another process (a broker, or a proxy with its embedded broker): stop it, or choose another --data"
    )]
    DataDirectoryInUse { path: String },

    #[error("flushing to disk failed: {reason}")]
    FlushFailed { reason: String },

    #[error("purging station {station} failed: {reason}")]
    PurgeFailed { station: String, reason: String },

    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] prost::DecodeError),

    /// A value that decodes but breaks Depot's own rules for it.
    #[error("stored data is corrupt: {reason}")]
    CorruptValue { reason: &'static str },

    #[error("the broker is shutting down")]
    ShuttingDown,

    /// A configured limit was reached (logins waiting, stations held); the
    /// reason names it and what to do.
    #[error("{reason}")]
    LimitReached { reason: String },
}

impl BrokerError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest {
            reason: reason.into(),
        }
    }
}

pub type BrokerResult<T> = Result<T, BrokerError>;
