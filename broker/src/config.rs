//! The broker's configuration: clap flags with `DEPOT_*` environment
//! fallbacks, parsed once at start-up and passed down as [`BrokerConfig`].
//! Nothing below this module reads the environment.

use std::{path::PathBuf, str::FromStr, time::Duration};

use clap::{ArgAction, Args};

/// How produce acknowledgements relate to fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Acknowledge only after the messages are flushed to disk. Concurrent
    /// produces share one flush (group commit). Nothing acknowledged is lost.
    Always,
    /// Acknowledge once written to sled's memory; flush every interval. A crash
    /// loses up to one interval of acknowledged messages.
    Interval(Duration),
    /// Acknowledge once written to sled's memory; never flush except at clean
    /// shutdown. A crash loses everything since the last clean shutdown that
    /// the OS had not yet written back.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => {
                let ms = s
                    .strip_prefix("interval:")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| {
                        format!("'{s}' is not one of: always, interval:<milliseconds>, never")
                    })?;
                Ok(Self::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

/// Parses a size such as `16MiB`, `512KB` or `1048576`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("'{s}' is not a size (e.g. 16MiB): {e}"))
}

/// Parses a duration such as `7d`, `2m`, `15s` or `0` (zero).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration (e.g. 7d, 2m): {e}"))
}

/// Everything the broker needs to start: where it listens, its threads,
/// and its [`BrokerOptions`].
#[derive(Debug, Clone, Args)]
pub struct BrokerConfig {
    /// Address the wire protocol listens on.
    #[arg(long, env = "DEPOT_LISTEN", default_value = "127.0.0.1:6666")]
    pub listen: String,

    /// Worker threads, which serve wire connections and run station actors
    /// (0: one per core).
    #[arg(long, env = "DEPOT_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Serve Prometheus metrics over HTTP at `http://<this>/metrics`
    /// (off when unset; proxies serve the broker's metrics too).
    #[arg(long, env = "DEPOT_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    #[command(flatten)]
    pub options: BrokerOptions,
}

/// The broker's options wherever it runs: `depot-broker` takes them, and
/// so does `depot-proxy` for the broker it embeds (which has its own flags
/// for the wire address and the worker threads, as the proxy's HTTP side
/// has a `--listen` and `--workers` of its own).
#[derive(Debug, Clone, Args)]
pub struct BrokerOptions {
    /// Directory holding all of the broker's data (sled).
    #[arg(long = "data", env = "DEPOT_DATA", default_value = "./depot-data")]
    pub data_dir: PathBuf,

    /// always (durable acks, group commit), interval:<ms>, or never.
    #[arg(long, env = "DEPOT_FSYNC", default_value = "always")]
    pub fsync: FsyncPolicy,

    /// sled's page cache; bounds the broker's memory whatever it stores.
    /// It holds the hot pages (the log tails being written and read); older
    /// pages are read back through the OS page cache. Raise it for readers
    /// that replay far behind the tail.
    #[arg(long = "cache", env = "DEPOT_CACHE", default_value = "8MiB", value_parser = parse_bytes)]
    pub cache_bytes: u64,

    /// Largest wire frame accepted; a larger one closes the connection.
    #[arg(long = "max-frame", env = "DEPOT_MAX_FRAME", default_value = "16MiB", value_parser = parse_bytes)]
    pub max_frame_bytes: u64,

    /// Serve the wire protocol over TLS with this certificate chain (PEM,
    /// the broker's certificate first); needs --wire-tls-key. Clients then
    /// connect with TLS (`depot --tls-ca`, `depot-proxy --broker-tls-ca`).
    #[arg(long, env = "DEPOT_WIRE_TLS_CERT", requires = "wire_tls_key")]
    pub wire_tls_cert: Option<PathBuf>,

    /// The wire certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "DEPOT_WIRE_TLS_KEY", requires = "wire_tls_cert")]
    pub wire_tls_key: Option<PathBuf>,

    /// Webhooks and the relay also trust the CA certificates of this PEM
    /// file (internal services with a private CA, let through with
    /// --allow-hosts); the web PKI roots stay trusted.
    #[arg(long, env = "DEPOT_OUTBOUND_TLS_CA")]
    pub outbound_tls_ca: Option<PathBuf>,

    /// Wire connections open at once; more are refused at accept.
    #[arg(long, env = "DEPOT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// How long a new wire connection has to open its session (Hello,
    /// then Authenticate), and before that its TLS handshake, if any; one
    /// that has not is answered and closed, so idle sockets cannot take
    /// every connection slot. 0: no limit.
    #[arg(long, env = "DEPOT_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Password and connection-token checks (logins over HTTP, wire
    /// connections opening) waiting for the password thread, at most;
    /// beyond it a login is refused at once as busy (HTTP 429) instead of
    /// queueing behind a flood for minutes. Each check takes ~20 ms.
    #[arg(long, env = "DEPOT_MAX_PENDING_LOGINS", default_value_t = 256)]
    pub max_pending_logins: usize,

    /// Requests one wire connection may have in flight; beyond it the broker
    /// stops reading that connection until answers drain (TCP backpressure).
    #[arg(
        long = "max-in-flight",
        env = "DEPOT_MAX_IN_FLIGHT",
        default_value_t = 1024
    )]
    pub max_in_flight_per_connection: usize,

    /// Subscriptions one wire connection may hold.
    #[arg(
        long = "max-subscriptions",
        env = "DEPOT_MAX_SUBSCRIPTIONS",
        default_value_t = 64
    )]
    pub max_subscriptions_per_connection: usize,

    /// The longest a fetch may wait for its first message (a long poll:
    /// the wire `Fetch.max_wait_ms`, HTTP `?wait_ms=`); a longer wait asked
    /// for is cut to this. Each waiting fetch holds one of its connection's
    /// requests in flight.
    #[arg(long, env = "DEPOT_MAX_FETCH_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub max_fetch_wait: Duration,

    /// How long the audit trail, the station `depot.audit` (every change
    /// to stations, users, schemas, subscriptions, dead letters and
    /// consumers, and every such attempt refused), keeps its entries; 0s:
    /// forever.
    #[arg(long, env = "DEPOT_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub audit_retention: Duration,

    /// Stations the broker holds at most; creating one more (by hand or on
    /// produce) is refused until some are deleted. Each costs an actor and
    /// its trees, so a producer inventing names cannot exhaust memory.
    #[arg(long, env = "DEPOT_MAX_STATIONS", default_value_t = 10_000)]
    pub max_stations: usize,

    /// Consumers with a position in one station, at most; committing for a
    /// new one beyond it is refused until some are deleted, so a reader
    /// inventing names cannot grow a station's tree without bound.
    #[arg(
        long = "max-consumers",
        env = "DEPOT_MAX_CONSUMERS",
        default_value_t = 1_000
    )]
    pub max_consumers_per_station: usize,

    /// Create unknown stations on produce (for users allowed to create them).
    #[arg(long, env = "DEPOT_AUTO_CREATE", default_value_t = true, action = ArgAction::Set)]
    pub auto_create: bool,

    /// How often each station applies retention and expires dedup entries.
    #[arg(long, env = "DEPOT_RETENTION_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub retention_interval: Duration,

    /// Let webhook subscriptions call private, loopback and link-local
    /// addresses (denied by default so Depot cannot be turned against
    /// internal services; for tests and local use).
    #[arg(long, env = "DEPOT_ALLOW_PRIVATE_URLS", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_urls: bool,

    /// Host names webhooks and the relay may call whatever they resolve to
    /// (an internal service you mean Depot to reach), comma-separated.
    #[arg(long, env = "DEPOT_ALLOW_HOSTS", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,

    /// Host names webhooks and the relay may never call, comma-separated.
    #[arg(long, env = "DEPOT_DENY_HOSTS", value_delimiter = ',')]
    pub deny_hosts: Vec<String>,

    /// Consecutive failed attempts (timeouts, connection errors, 408, 429,
    /// 5xx) after which a subscription's circuit opens and its endpoint is
    /// left alone until a probe; 0 never opens it.
    #[arg(long, env = "DEPOT_CIRCUIT_FAILURES", default_value_t = 20)]
    pub circuit_failures: u32,

    /// How long an opened circuit waits before its first probe (doubling
    /// after each failed probe, up to 10 minutes).
    #[arg(long, env = "DEPOT_CIRCUIT_PROBE_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub circuit_probe_after: Duration,

    /// How long finished webhook deliveries (completed or failed) and their
    /// attempts are kept; 0 keeps them forever. Pending ones always stay.
    #[arg(long, env = "DEPOT_DELIVERY_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub delivery_retention: Duration,

    /// Where to POST an alert (signed JSON) when a relayed request will not
    /// arrive: refused with a 4xx, or out of attempts. Always logged too.
    #[arg(long, env = "DEPOT_ALERT_URL")]
    pub alert_url: Option<String>,

    /// Password of `root` on first start (generated and printed when unset).
    /// Ignored once the data directory has a root user.
    #[arg(long, env = "DEPOT_ROOT_PASSWORD", hide_env_values = true)]
    pub root_password: Option<String>,

    /// A connection token for `root` on first start (optional; applications
    /// and the seed's curl examples authenticate with one).
    #[arg(long, env = "DEPOT_ROOT_CONNECTION_TOKEN", hide_env_values = true)]
    pub root_connection_token: Option<String>,
}

impl BrokerConfig {
    /// A configuration with every default, for a data directory and address.
    pub fn new(data_dir: impl Into<PathBuf>, listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            workers: 0,
            metrics_listen: None,
            options: BrokerOptions::new(data_dir),
        }
    }

    /// Connection worker threads to start.
    pub fn worker_threads(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

/// Room a wire frame keeps for a message's other fields (id, headers,
/// producer, ...) beside its payload.
const MESSAGE_FRAME_MARGIN: u64 = 64 * 1024;
/// Room a frame of many messages (a fetch's answer) keeps for everything
/// but their payloads.
const BATCH_FRAME_MARGIN: u64 = 1024 * 1024;

impl BrokerOptions {
    /// The largest payload one wire frame can carry back to a reader: a
    /// station may not take larger messages, or no fetch or subscription
    /// could deliver them.
    pub fn largest_deliverable_message(&self) -> u64 {
        self.max_frame_bytes.saturating_sub(MESSAGE_FRAME_MARGIN)
    }

    /// The payload bytes one answer of many messages may carry (at least
    /// one message is always sent, within the limit above).
    pub fn payload_room_per_frame(&self) -> u64 {
        self.max_frame_bytes
            .saturating_sub(BATCH_FRAME_MARGIN)
            .max(1)
    }

    /// Every default, for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            cache_bytes: 8 * 1024 * 1024,
            max_frame_bytes: depot_schemas::DEFAULT_MAX_FRAME_BYTES as u64,
            wire_tls_cert: None,
            wire_tls_key: None,
            outbound_tls_ca: None,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            max_pending_logins: 256,
            max_in_flight_per_connection: 1024,
            max_subscriptions_per_connection: 64,
            max_fetch_wait: Duration::from_secs(30),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            max_stations: 10_000,
            max_consumers_per_station: 1_000,
            auto_create: true,
            retention_interval: Duration::from_secs(5),
            allow_private_urls: false,
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            circuit_failures: 20,
            circuit_probe_after: Duration::from_secs(30),
            alert_url: None,
            delivery_retention: Duration::from_secs(7 * 86_400),
            root_password: None,
            root_connection_token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fsync_policies() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!("never".parse(), Ok(FsyncPolicy::Never));
        assert_eq!(
            "interval:50".parse(),
            Ok(FsyncPolicy::Interval(Duration::from_millis(50)))
        );
        assert!("interval:".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }

    #[test]
    fn parses_sizes_and_durations() {
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }
}
