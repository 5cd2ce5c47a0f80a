//! Delivery to subscribers' HTTP endpoints (webhooks) and the relay:
//!
//! - [`actor`]: the delivery actor of one subscription.
//! - [`alert`]: alerts about relayed requests that will not arrive.
//! - [`circuit`]: the circuit breaker that stops hammering a failing endpoint.
//! - [`cloudevents`]: CloudEvents 1.0 bodies (structured) and headers (binary).
//! - [`log`]: a subscription's cursor, deliveries and attempts in sled.
//! - [`metrics`]: per-subscription Prometheus series.
//! - [`reader`]: follows a subscription's station and admits deliveries.
//! - [`registry`]: the broker's subscriptions and their running actors.
//! - [`relay`]: relayed HTTP requests as messages of an internal station.
//! - [`retry`]: outcome rules and retry schedules (with `Retry-After`).
//! - [`sender`]: one HTTP attempt, built, signed, sent and recorded.
//! - [`subscription`]: a subscription and the rules it must pass.
//! - [`signature`]: Standard Webhooks secrets and signatures.
//! - [`url_policy`]: which destinations may be called (SSRF protection).

pub mod actor;
pub mod alert;
pub mod circuit;
pub mod cloudevents;
pub mod log;
pub mod metrics;
mod reader;
pub mod registry;
pub mod relay;
pub mod retry;
pub mod sender;
pub mod signature;
pub mod subscription;
#[cfg(test)]
mod test_receiver;
pub mod url_policy;

pub use actor::DeliveryActor;
pub use log::DeliveryLog;
pub use registry::Deliveries;
pub use retry::RetrySchedule;
pub use signature::WebhookSecret;
pub use subscription::{DeliveryMode, Subscription};
pub use url_policy::UrlPolicy;
