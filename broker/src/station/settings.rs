//! Per-station settings and their defaults.

use std::time::Duration;

use depot_schemas::storage;

/// Messages older than this are removed unless a station says otherwise.
pub const DEFAULT_RETENTION_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// A repeated `msg-id` inside this window is a duplicate.
pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(2 * 60);
/// Largest payload a station accepts by default.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;
/// Messages refused by a station's schema are kept this long by default.
pub const DEFAULT_DEAD_LETTER_RETENTION: Duration = Duration::from_secs(3 * 24 * 60 * 60);

/// Retention limits are "0 = unlimited"; the oldest messages go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationSettings {
    pub retention_age: Duration,
    pub retention_messages: u64,
    pub retention_bytes: u64,
    pub idempotency_window: Duration,
    pub max_message_bytes: u64,
    /// How long refused messages are kept (zero: forever).
    pub dead_letter_retention: Duration,
    /// Whether refused messages are kept at all.
    pub keep_dead_letters: bool,
    /// A notification station: each message with a `user` (or
    /// `connection`) header is pushed to those WebSocket connections.
    pub notify_connections: bool,
}

impl Default for StationSettings {
    fn default() -> Self {
        Self {
            retention_age: DEFAULT_RETENTION_AGE,
            retention_messages: 0,
            retention_bytes: 0,
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            dead_letter_retention: DEFAULT_DEAD_LETTER_RETENTION,
            keep_dead_letters: true,
            notify_connections: false,
        }
    }
}

/// A partial change to [`StationSettings`]: `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub retention_age: Option<Duration>,
    pub retention_messages: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub idempotency_window: Option<Duration>,
    pub max_message_bytes: Option<u64>,
    pub dead_letter_retention: Option<Duration>,
    pub keep_dead_letters: Option<bool>,
    pub notify_connections: Option<bool>,
}

impl StationSettings {
    pub fn with(mut self, change: SettingsChange) -> Self {
        if let Some(v) = change.retention_age {
            self.retention_age = v;
        }
        if let Some(v) = change.retention_messages {
            self.retention_messages = v;
        }
        if let Some(v) = change.retention_bytes {
            self.retention_bytes = v;
        }
        if let Some(v) = change.idempotency_window {
            self.idempotency_window = v;
        }
        if let Some(v) = change.max_message_bytes {
            self.max_message_bytes = v;
        }
        if let Some(v) = change.dead_letter_retention {
            self.dead_letter_retention = v;
        }
        if let Some(v) = change.keep_dead_letters {
            self.keep_dead_letters = v;
        }
        if let Some(v) = change.notify_connections {
            self.notify_connections = v;
        }
        self
    }

    pub(crate) fn to_storage(self) -> storage::StationSettings {
        storage::StationSettings {
            retention_age_ms: self.retention_age.as_millis() as u64,
            retention_messages: self.retention_messages,
            retention_bytes: self.retention_bytes,
            idempotency_window_ms: self.idempotency_window.as_millis() as u64,
            max_message_bytes: self.max_message_bytes,
            dead_letter_retention_ms: Some(self.dead_letter_retention.as_millis() as u64),
            drop_dead_letters: !self.keep_dead_letters,
            notify_connections: self.notify_connections,
        }
    }

    pub(crate) fn from_storage(s: &storage::StationSettings) -> Self {
        Self {
            retention_age: Duration::from_millis(s.retention_age_ms),
            retention_messages: s.retention_messages,
            retention_bytes: s.retention_bytes,
            idempotency_window: Duration::from_millis(s.idempotency_window_ms),
            max_message_bytes: s.max_message_bytes,
            dead_letter_retention: s
                .dead_letter_retention_ms
                .map_or(DEFAULT_DEAD_LETTER_RETENTION, Duration::from_millis),
            keep_dead_letters: !s.drop_dead_letters,
            notify_connections: s.notify_connections,
        }
    }
}
