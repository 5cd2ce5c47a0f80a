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

    #[error("bad request: {reason}")]
    BadRequest { reason: String },

    #[error("authentication failed: wrong username or password")]
    BadCredentials,

    #[error("permission denied: {reason}")]
    PermissionDenied { reason: String },

    #[error("storage failure: {0}")]
    Storage(#[from] sled::Error),

    #[error("flushing to disk failed: {reason}")]
    FlushFailed { reason: String },

    #[error("stored data is corrupt: {0}")]
    Corrupt(#[from] prost::DecodeError),

    #[error("the broker is shutting down")]
    ShuttingDown,
}

impl BrokerError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest {
            reason: reason.into(),
        }
    }
}

pub type BrokerResult<T> = Result<T, BrokerError>;
