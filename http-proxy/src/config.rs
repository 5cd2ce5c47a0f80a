//! The proxy's configuration: clap flags with `DEPOT_*` environment
//! fallbacks, parsed once and passed down.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser};

use depot_broker::config::{BrokerConfig, BrokerOptions, parse_bytes, parse_duration};

/// `depot-proxy`: Depot's HTTP front door.
#[derive(Debug, Parser)]
#[command(name = "depot-proxy", version, about)]
pub struct ProxyCommand {
    #[command(flatten)]
    pub config: ProxyConfig,
}

/// Everything the proxy needs to start.
#[derive(Debug, Clone, Args)]
pub struct ProxyConfig {
    /// Address the HTTP API listens on.
    #[arg(long, env = "DEPOT_PROXY_LISTEN", default_value = "127.0.0.1:4444")]
    pub listen: String,

    /// A remote broker (HOST:PORT). Without it the proxy runs a broker in
    /// this process, on --data, also listening on --broker-listen.
    #[arg(long, env = "DEPOT_PROXY_BROKER")]
    pub broker: Option<String>,

    /// The administrator the proxy connects to a remote broker as.
    #[arg(long, env = "DEPOT_PROXY_BROKER_USER", default_value = "root")]
    pub broker_user: String,

    /// That administrator's password.
    #[arg(long, env = "DEPOT_PROXY_BROKER_PASSWORD", hide_env_values = true)]
    pub broker_password: Option<String>,

    /// Connect to the remote broker over TLS (one started with
    /// --wire-tls-cert), checking its certificate against the web PKI roots.
    #[arg(long, env = "DEPOT_PROXY_BROKER_TLS")]
    pub broker_tls: bool,

    /// Connect to the remote broker over TLS, checking its certificate
    /// against the CA certificates of this PEM file.
    #[arg(long, env = "DEPOT_PROXY_BROKER_TLS_CA")]
    pub broker_tls_ca: Option<PathBuf>,

    /// Connections to a remote broker (each is pipelined).
    #[arg(long, env = "DEPOT_PROXY_BROKER_CONNECTIONS", default_value_t = 4)]
    pub broker_connections: usize,

    /// Embedded broker: its wire address, for the `depot` CLI and more proxies.
    #[arg(long, env = "DEPOT_BROKER_LISTEN", default_value = "127.0.0.1:6666")]
    pub broker_listen: String,

    /// Embedded broker: worker threads of its own for station actors and
    /// wire connections; 0 (the default) runs them on the HTTP workers,
    /// which measured less CPU per request and no worse a tail
    /// (`benches/RESULTS.md`, HTTP proxy, fifth session of 2026-12-02).
    #[arg(long, env = "DEPOT_PROXY_BROKER_WORKERS", default_value_t = 0)]
    pub broker_workers: usize,

    /// Access token lifetime when the client does not ask for one.
    #[arg(long, env = "DEPOT_TOKEN_EXPIRY", default_value = "15m", value_parser = parse_duration)]
    pub token_expiry: Duration,

    /// Refresh token lifetime when the client does not ask for one.
    #[arg(long, env = "DEPOT_REFRESH_TOKEN_EXPIRY", default_value = "5h", value_parser = parse_duration)]
    pub refresh_token_expiry: Duration,

    /// Longest access token lifetime a client may ask for.
    #[arg(long, env = "DEPOT_MAX_TOKEN_EXPIRY", default_value = "24h", value_parser = parse_duration)]
    pub max_token_expiry: Duration,

    /// Longest refresh token lifetime a client may ask for.
    #[arg(long, env = "DEPOT_MAX_REFRESH_TOKEN_EXPIRY", default_value = "7d", value_parser = parse_duration)]
    pub max_refresh_token_expiry: Duration,

    /// Verified tokens remembered, so a token's signature is
    /// checked once, not on every request (0: check every time). Each
    /// takes about half a KiB.
    #[arg(long, env = "DEPOT_VERIFIED_TOKEN_CACHE", default_value_t = 10_000)]
    pub verified_token_cache: usize,

    /// Largest body of /produce/single.
    #[arg(long, env = "DEPOT_MAX_SINGLE_BODY", default_value = "1MiB", value_parser = parse_bytes)]
    pub max_single_body: u64,

    /// Largest body of /produce/batch.
    #[arg(long, env = "DEPOT_MAX_BATCH_BODY", default_value = "16MiB", value_parser = parse_bytes)]
    pub max_batch_body: u64,

    /// Most messages in one batch.
    #[arg(long, env = "DEPOT_MAX_BATCH_MESSAGES", default_value_t = 10_000)]
    pub max_batch_messages: usize,

    /// A browser origin allowed to call the API (repeatable; none by default).
    #[arg(
        long = "cors-origin",
        env = "DEPOT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// The user whose password `GET /getToken` takes in `Authorization`
    /// (the seed relay's single password); `Basic user:password` names
    /// any user.
    #[arg(long, env = "DEPOT_RELAY_USER", default_value = "root")]
    pub relay_user: String,

    /// WebSocket connections this proxy holds at most; more are refused
    /// with 503.
    #[arg(long, env = "DEPOT_WS_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub ws_max_connections: usize,

    /// Server-Sent Event streams (`GET /stations/{name}/events`) this proxy
    /// holds at most; more are refused with 503.
    #[arg(long, env = "DEPOT_SSE_MAX_STREAMS", default_value_t = 10_000)]
    pub sse_max_streams: usize,

    /// How often an event stream gets a comment line when nothing else is
    /// sent (at least 1 s): idle streams stay open through other proxies,
    /// and a client that went away is found.
    #[arg(long, env = "DEPOT_SSE_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub sse_keepalive: Duration,

    /// Largest WebSocket frame (or fragmented message) accepted; a larger
    /// one closes the connection.
    #[arg(long, env = "DEPOT_WS_MAX_FRAME", default_value = "64KiB", value_parser = parse_bytes)]
    pub ws_max_frame: u64,

    /// Frames waiting to be sent to one client, at most (the proxy never
    /// buffers without bound: the station is read no faster).
    #[arg(long, env = "DEPOT_WS_SEND_BUFFER", default_value_t = 1024)]
    pub ws_send_buffer: usize,

    /// A client whose send buffer stays full this long is too slow and is
    /// closed, so it holds nothing up.
    #[arg(long, env = "DEPOT_WS_SLOW_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub ws_slow_timeout: Duration,

    /// How often the proxy pings each WebSocket client.
    #[arg(long, env = "DEPOT_WS_PING_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub ws_ping_interval: Duration,

    /// A client silent this long (no frame, no pong) is closed.
    #[arg(long, env = "DEPOT_WS_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub ws_idle_timeout: Duration,

    /// How long a connection opened without ?authorization= may take to
    /// send {"action":"authorize","token":...}; 0 requires the token at
    /// connect.
    #[arg(long, env = "DEPOT_WS_AUTHORIZE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub ws_authorize_timeout: Duration,

    /// Station subscriptions one WebSocket connection may hold.
    #[arg(long, env = "DEPOT_WS_MAX_SUBSCRIPTIONS", default_value_t = 16)]
    pub ws_max_subscriptions: usize,

    /// HTTP worker threads (0: one per core). An embedded broker runs its
    /// station actors and wire connections on them too, unless it has
    /// `--broker-workers` of its own.
    #[arg(long, env = "DEPOT_PROXY_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// HTTP connections (WebSockets included) this proxy holds at most;
    /// beyond it the proxy stops accepting until one closes (the rest wait
    /// in the listen backlog). Spread evenly over the workers.
    #[arg(long, env = "DEPOT_HTTP_MAX_CONNECTIONS", default_value_t = 25_000)]
    pub http_max_connections: usize,

    /// Fetches waiting for messages (`GET /stations/{name}/messages?wait_ms=`)
    /// this proxy holds at most; one more is answered 429 at once. Each
    /// holds a request in flight on a broker connection, so they are kept
    /// well below the broker's `--max-in-flight` per connection.
    #[arg(long, env = "DEPOT_HTTP_MAX_WAITING_FETCHES", default_value_t = 256)]
    pub http_max_waiting_fetches: usize,

    /// How long a client may take to send a request's head; a slower one
    /// gets 408 and is closed, so trickled headers cannot hold a connection.
    #[arg(long, env = "DEPOT_HTTP_REQUEST_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub http_request_timeout: Duration,

    /// How long a request body may stall (no bytes arriving) before the
    /// proxy answers 408 and closes the connection.
    #[arg(long, env = "DEPOT_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_body_timeout: Duration,

    /// How long an idle keep-alive connection stays open; 0 closes each
    /// connection after its response.
    #[arg(long, env = "DEPOT_HTTP_KEEP_ALIVE", default_value = "5s", value_parser = parse_duration)]
    pub http_keep_alive: Duration,

    /// Serve HTTPS (and WSS) with this certificate chain (PEM, the
    /// server's certificate first) instead of plain HTTP; needs --tls-key.
    #[arg(long, env = "DEPOT_PROXY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "DEPOT_PROXY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// With HTTPS (which offers HTTP/2): requests one connection may have
    /// in flight; one more is answered 429 at once.
    #[arg(long, env = "DEPOT_HTTP2_MAX_STREAMS", default_value_t = 100)]
    pub http2_max_streams: usize,

    /// How long a client may take to finish its TLS handshake (then it is
    /// closed, so half-open handshakes hold nothing).
    #[arg(long, env = "DEPOT_PROXY_TLS_HANDSHAKE_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// On SIGTERM or SIGINT: the listener closes, WebSockets are closed
    /// with 1001 (going away) so clients reconnect elsewhere, and requests
    /// in flight get this long to finish before connections are dropped.
    #[arg(long, env = "DEPOT_PROXY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// The embedded broker's options (ignored with --broker).
    #[command(flatten, next_help_heading = "Embedded broker (without --broker)")]
    pub embedded: BrokerOptions,
}

impl ProxyConfig {
    /// The embedded broker's configuration.
    pub fn embedded_broker(&self) -> BrokerConfig {
        BrokerConfig {
            listen: self.broker_listen.clone(),
            workers: self.broker_workers,
            metrics_listen: None,
            options: self.embedded.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The proxy takes the broker's options for the broker it embeds;
    /// clap refuses two flags of one name only when the command is built,
    /// so this checks the whole command line once.
    #[test]
    fn the_command_line_is_well_formed_and_reaches_the_embedded_broker() {
        ProxyCommand::command().debug_assert();
        let config = ProxyCommand::try_parse_from([
            "depot-proxy",
            "--listen",
            "127.0.0.1:4445",
            "--broker-listen",
            "127.0.0.1:6667",
            "--max-frame",
            "1MiB",
            "--max-connections",
            "7",
            "--http-max-connections",
            "9",
        ])
        .expect("valid flags")
        .config;
        assert_eq!(config.listen, "127.0.0.1:4445");
        assert_eq!(config.http_max_connections, 9);
        let broker = config.embedded_broker();
        assert_eq!(broker.listen, "127.0.0.1:6667");
        assert_eq!(broker.options.max_frame_bytes, 1 << 20);
        assert_eq!(broker.options.max_connections, 7);
    }
}
