//! What the broker refused because a configured limit was reached, counted
//! by limit (`depot_broker_limit_refusals_total{limit=...}`): a flood, or a
//! limit set too tight, shows here before users report it.

use prometheus::{IntCounterVec, Opts, Registry};

/// A limit that refuses work, named as its flag (without the dashes).
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// `--max-connections`: a wire connection refused at accept.
    MaxConnections,
    /// `--handshake-timeout`: a wire connection closed before its session
    /// opened.
    HandshakeTimeout,
    /// `--max-pending-logins`: a login refused while the password thread
    /// was full.
    MaxPendingLogins,
    /// `--max-stations`: a station not created.
    MaxStations,
    /// `--max-consumers`: a consumer's first position not committed.
    MaxConsumers,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Self::MaxConnections => "max_connections",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::MaxPendingLogins => "max_pending_logins",
            Self::MaxStations => "max_stations",
            Self::MaxConsumers => "max_consumers",
        }
    }
}

/// Counts refusals; cheap to clone.
#[derive(Clone)]
pub struct Refusals(IntCounterVec);

impl Refusals {
    /// The counter, registered in `registry`.
    pub fn register(registry: &Registry) -> Self {
        let counter = IntCounterVec::new(
            Opts::new(
                "limit_refusals_total",
                "Work refused because a configured limit was reached, by limit",
            ),
            &["limit"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(counter.clone()))
            .expect("the refusal metric is registered once");
        Self(counter)
    }

    pub fn count(&self, limit: Limit) {
        self.0.with_label_values(&[limit.label()]).inc();
    }
}
