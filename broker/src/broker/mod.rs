//! [`Broker`]: the domain core every edge calls (the wire server, the
//! embedded HTTP proxy). Each operation checks the caller's rights, then goes
//! to the station's actor (writes) or straight to its log (reads).
//! Edges parse and map results; they never touch sled or actors themselves.
//!
//! - [`stations`]: station lifecycle, produce, fetch.
//! - [`validation`]: schema checks on the produce path.
//! - [`schemas`]: the schema registry and attachments.
//! - [`dead_letters`]: listing and resending refused messages.
//! - [`subscriptions`]: webhook subscriptions and their deliveries.
//! - [`relay`]: relaying one HTTP request (tried at once, else queued).
//! - [`connections`]: the WebSocket connection registry and notifications.
//! - [`users`]: authentication and the user store.
//! - [`audit`]: the trail of every change, in `depot.audit`.

pub mod audit;
mod connections;
mod consumers;
mod dead_letters;
mod leases;
mod notifications;
mod relay;
mod schemas;
mod stations;
mod subscriptions;
mod users;
mod validation;

pub use consumers::ConsumerSummary;
pub use dead_letters::{ResendOutcome, ResendSelection};
pub use schemas::SchemaSummary;
pub use stations::FetchFrom;
pub use subscriptions::{DeliveryView, NewSubscription, SubscriptionChange, SubscriptionState};
pub use users::{SpentToken, UserSummary};

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;
use parking_lot::RwLock;

use crate::{
    auth::{self, PasswordHasher, Principal},
    config::BrokerConfig,
    delivery::{Deliveries, UrlPolicy, circuit::CircuitSettings, registry::DeliverySettings},
    error::{BrokerError, BrokerResult},
    persist::{GroupCommit, Store},
    refusals::Refusals,
    registry::{StationDirectory, StationRegistry},
    schema::SchemaCatalog,
};

/// How often expired single-use tokens are forgotten.
const USED_TOKEN_PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// `root`'s password in brokers opened by [`Broker::open_for_test`].
#[cfg(test)]
pub(crate) const TEST_ROOT_PASSWORD: &str = "root-password";

/// A running broker core; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    config: BrokerConfig,
    store: Store,
    group_commit: GroupCommit,
    registry: Addr<StationRegistry>,
    directory: StationDirectory,
    schemas: Arc<SchemaCatalog>,
    deliveries: Deliveries,
    /// Live WebSocket connections, across proxies.
    connections: crate::connections::Connections,
    /// Notification stations' followers, by station (cleared to stop one).
    notifiers: parking_lot::Mutex<
        HashMap<crate::station::StationName, Arc<std::sync::atomic::AtomicBool>>,
    >,
    /// The broker's Prometheus metrics (deliveries so far).
    metrics: prometheus::Registry,
    /// Work refused by a configured limit, counted in `metrics`.
    refusals: Refusals,
    /// Wire connections open now (`depot_broker_wire_connections`).
    wire_connections: prometheus::IntGauge,
    /// The broker's worker threads: station actors are spread over them,
    /// and the wire server serves its connections on them, so a produce
    /// whose connection shares its station's thread reaches the actor
    /// without waking another thread, and the cores are not split between
    /// connection threads and station threads that take turns.
    workers: Vec<ArbiterHandle>,
    /// The threads among `workers` the broker started itself (all of them,
    /// unless they were lent by [`Broker::open_on`]): stopped at shutdown.
    own_workers: Vec<Arbiter>,
    passwords: PasswordHasher,
    /// Principals by user name, for requests made on behalf of users (the
    /// HTTP proxy's): compiled once, dropped when the user changes.
    principals: RwLock<HashMap<String, Arc<Principal>>>,
    /// Whether the audit trail's station has this run's settings yet.
    audit_ready: std::sync::atomic::AtomicBool,
}

/// What [`Broker::open`] learned on the way.
pub struct Opened {
    pub broker: Broker,
    /// `root`'s password when it was generated on this (first) start; show it
    /// once.
    pub generated_root_password: Option<String>,
}

impl Broker {
    /// Opens the data directory, recovers every station and starts their
    /// actors on worker threads of its own (`config.worker_threads()`).
    /// Must run inside an actix system.
    pub fn open(config: BrokerConfig) -> BrokerResult<Opened> {
        let own_workers: Vec<Arbiter> = (0..config.worker_threads())
            .map(|_| Arbiter::new())
            .collect();
        let workers = own_workers.iter().map(Arbiter::handle).collect();
        Self::open_with(config, workers, own_workers)
    }

    /// Like [`Broker::open`], but the station actors and the wire server's
    /// connections run on `workers`, threads of the embedding process that
    /// it stops itself: the HTTP proxy lends its workers, so a request
    /// reaches its station's actor without waking another thread when they
    /// share one, and the process has no threads that only take turns with
    /// them for the cores. A station stops with the thread it runs on.
    pub fn open_on(config: BrokerConfig, workers: Vec<ArbiterHandle>) -> BrokerResult<Opened> {
        assert!(!workers.is_empty(), "the broker needs a worker thread");
        Self::open_with(config, workers, Vec::new())
    }

    fn open_with(
        config: BrokerConfig,
        workers: Vec<ArbiterHandle>,
        own_workers: Vec<Arbiter>,
    ) -> BrokerResult<Opened> {
        let options = &config.options;
        let store = Store::open(options)?;
        let metrics = prometheus::Registry::new_custom(Some("depot_broker".into()), None)
            .expect("a valid metric prefix");
        let refusals = Refusals::register(&metrics);
        let wire_connections =
            prometheus::IntGauge::new("wire_connections", "Wire protocol connections open")
                .expect("a valid metric");
        metrics
            .register(Box::new(wire_connections.clone()))
            .expect("the connections gauge is registered once");
        let passwords = PasswordHasher::start(options.max_pending_logins, refusals.clone());
        let generated_root_password = auth::ensure_root(
            &store,
            &passwords,
            options.root_password.as_deref(),
            options.root_connection_token.as_deref(),
        )?;
        // The proxies' token key exists, durably, before any token is issued:
        // losing it in a crash would void every token in circulation.
        store.signing_key()?;
        store.db().flush()?;
        let group_commit = GroupCommit::start(store.db().clone(), options.fsync, &metrics);
        let schemas = Arc::new(SchemaCatalog::load(store.clone())?);
        let (registry, directory) = StationRegistry::recover(
            store.clone(),
            schemas.clone(),
            group_commit.clone(),
            options.retention_interval,
            options.max_stations,
            refusals.clone(),
            workers.clone(),
        )?;
        let registry = registry.start();
        metrics
            .register(Box::new(crate::consumer_lag::ConsumerLag::new(
                directory.clone(),
            )))
            .expect("the consumer lag metric is registered once");
        metrics
            .register(Box::new(crate::station_metrics::StationMetrics::new(
                directory.clone(),
            )))
            .expect("the station metrics are registered once");
        metrics
            .register(Box::new(crate::work_queue_metrics::WorkQueueMetrics::new(
                directory.clone(),
            )))
            .expect("the work queue metrics are registered once");
        let delivery_settings = DeliverySettings {
            policy: UrlPolicy {
                allow_private: options.allow_private_urls,
                allow_hosts: options.allow_hosts.clone(),
                deny_hosts: options.deny_hosts.clone(),
            },
            circuit: CircuitSettings {
                failures: options.circuit_failures,
                probe_after: options.circuit_probe_after,
            },
            alert_url: options.alert_url.clone(),
            record_retention: options.delivery_retention,
            outbound_tls: options
                .outbound_tls_ca
                .as_deref()
                .map(crate::tls::outbound_client_config)
                .transpose()
                .map_err(|e| BrokerError::bad_request(format!("--outbound-tls-ca: {e}")))?,
        };
        if let Some(url) = &options.alert_url {
            delivery_settings
                .policy
                .check_url(url)
                .map_err(|e| BrokerError::bad_request(format!("--alert-url: {e}")))?;
        }
        let deliveries = Deliveries::start(
            store.clone(),
            group_commit.clone(),
            delivery_settings,
            &metrics,
            &directory,
        )?;
        actix::spawn(purge_used_tokens(store.clone()));
        let broker = Broker {
            inner: Arc::new(Inner {
                config,
                store,
                group_commit,
                registry,
                directory,
                schemas,
                deliveries,
                connections: Default::default(),
                notifiers: Default::default(),
                metrics,
                refusals,
                wire_connections,
                workers,
                own_workers,
                passwords,
                principals: RwLock::default(),
                audit_ready: Default::default(),
            }),
        };
        let notifications = broker.clone();
        actix::spawn(async move { notifications.start_notifications().await });
        Ok(Opened {
            broker,
            generated_root_password,
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Counts work refused by a configured limit.
    pub fn refusals(&self) -> &Refusals {
        &self.inner.refusals
    }

    /// The gauge of open wire connections, kept by the wire server.
    pub fn wire_connections(&self) -> &prometheus::IntGauge {
        &self.inner.wire_connections
    }

    /// The broker's worker threads, for the wire server's connections.
    pub(crate) fn workers(&self) -> Vec<ArbiterHandle> {
        self.inner.workers.clone()
    }

    /// The broker's metrics in the Prometheus text format. Not secret, but
    /// only served to who may see them (`/metrics` listeners are loopback by
    /// default; the wire asks for a session).
    pub fn metrics_text(&self) -> String {
        use prometheus::Encoder;
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.inner.metrics.gather(), &mut buffer)
            .expect("encoding to memory");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }

    /// The store, for the broker's own subsystems (the delivery tests, until
    /// the delivery engine is wired into the broker).
    #[cfg(test)]
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration of the crate's test brokers: data in `dir`,
    /// `root`'s password [`TEST_ROOT_PASSWORD`].
    #[cfg(test)]
    pub(crate) fn test_config(dir: &std::path::Path) -> BrokerConfig {
        let mut config = BrokerConfig::new(dir, "127.0.0.1:0");
        config.options.root_password = Some(TEST_ROOT_PASSWORD.into());
        config
    }

    /// A broker on `dir` for the crate's tests ([`Broker::test_config`]),
    /// with `adjust` applied to its configuration.
    #[cfg(test)]
    pub(crate) fn open_for_test(
        dir: &std::path::Path,
        adjust: impl FnOnce(&mut BrokerConfig),
    ) -> Broker {
        let mut config = Self::test_config(dir);
        adjust(&mut config);
        Broker::open(config).expect("a test broker opens").broker
    }

    #[cfg(test)]
    pub(crate) fn group_commit(&self) -> GroupCommit {
        self.inner.group_commit.clone()
    }

    /// Flushes and stops the flushing thread; the process may exit after.
    pub fn shutdown(&self) {
        self.inner.deliveries.shutdown();
        self.inner.group_commit.shutdown();
        for arbiter in &self.inner.own_workers {
            arbiter.stop();
        }
    }

    async fn registry<M>(&self, message: M) -> BrokerResult<M::Result>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        StationRegistry: Handler<M>,
    {
        self.inner
            .registry
            .send(message)
            .await
            .map_err(|_| BrokerError::ShuttingDown)
    }
}

async fn purge_used_tokens(store: Store) {
    let mut every = tokio::time::interval(USED_TOKEN_PURGE_INTERVAL);
    loop {
        every.tick().await;
        if let Err(error) = store.purge_used_tokens(crate::clock::now_ms()) {
            tracing::warn!(%error, "purging used tokens failed");
        }
    }
}

#[cfg(test)]
mod tests;
