//! The Depot broker.
//!
//! A message travels produce -> (validate) -> persist -> deliver, and the
//! modules follow it:
//!
//! - [`server`]: the wire-protocol listener; decodes frames on connection
//!   threads and calls the [`broker::Broker`] core.
//! - [`broker`]: the domain core: permission checks, then stations, schemas,
//!   users, subscriptions, the relay and WebSocket connections.
//! - [`registry`]: creates, finds and deletes stations.
//! - [`station`]: a station's single-writer actor, its log in sled, retention.
//! - [`schema`]: station schemas (JSON Schema, Protobuf) and validation.
//! - [`persist`]: the sled store and the group commit that makes writes
//!   durable before they are acknowledged.
//! - [`delivery`]: the actors pushing stations to webhooks (and relayed
//!   requests to their destinations): retries, records, dead letters.
//! - [`client`]: the async wire client used by the CLI, the benchmarks and
//!   the HTTP proxy against a remote broker.
//! - [`cli`]: the `depot` admin CLI; [`views`]: the JSON it and the proxy
//!   print for people's scripts.
//! - [`refusals`], [`consumer_lag`], [`station_metrics`] and
//!   [`work_queue_metrics`]: metrics for operators (work a limit refused;
//!   how far behind each consumer is; what each station holds; what each
//!   work queue has in flight).
//! - [`tls`]: TLS identities (wire port, proxy HTTPS) and what clients and
//!   deliveries trust.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connections;
pub mod consumer_lag;
pub mod delivery;
pub mod error;
mod frames;
pub mod persist;
pub mod refusals;
pub mod registry;
pub mod run;
pub mod schema;
pub mod scraped;
pub mod server;
pub mod station;
pub mod station_metrics;
pub mod tls;
pub mod views;
pub mod work_queue_metrics;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::{BrokerError, BrokerResult};
