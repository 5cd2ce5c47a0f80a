//! The Depot broker.
//!
//! A message travels produce -> (validate) -> persist -> deliver, and the
//! modules follow it:
//!
//! - [`server`]: the wire-protocol listener; decodes frames on connection
//!   threads and calls the [`broker::Broker`] core.
//! - [`broker`]: the domain core: permission checks, then stations.
//! - [`registry`]: creates, finds and deletes stations.
//! - [`station`]: a station's single-writer actor, its log in sled, retention.
//! - [`persist`]: the sled store and the group commit that makes writes
//!   durable before they are acknowledged.
//! - [`client`]: the async wire client used by the CLI, the benchmarks and
//!   (soon) the HTTP proxy.
//! - [`cli`]: the `depot` admin CLI.
//!
//! - [`schema`]: station schemas (JSON Schema, Protobuf) and validation.
//! - [`delivery`]: pushing messages to webhooks (its standalone parts so far:
//!   signatures and the destination policy).
//!
//! Readers today are fetches and wire subscriptions; webhook delivery and
//! WebSockets arrive with their issues.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod error;
mod frames;
pub mod persist;
pub mod refusals;
pub mod registry;
pub mod run;
pub mod schema;
pub mod server;
pub mod station;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::{BrokerError, BrokerResult};
