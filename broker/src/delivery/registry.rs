//! [`Deliveries`]: the subscriptions of a broker, persisted in the
//! `subscriptions` tree, and one [`DeliveryActor`] running for each one that
//! is not paused, all on one delivery thread.

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;
use parking_lot::Mutex;

use depot_schemas::storage::{DeliveryRecord, DeliveryStatus};

use crate::{
    clock::now_ms,
    delivery::{
        DeliveryActor, DeliveryLog, Subscription, UrlPolicy,
        actor::{DeliveryContext, Requeue, Stop},
        circuit::{CircuitSettings, CircuitState},
        metrics::{DeliveryMetrics, SubscriptionMetrics},
        relay::RelayWaiters,
    },
    error::{BrokerError, BrokerResult},
    persist::{GroupCommit, Store},
    registry::StationDirectory,
};

pub struct Deliveries {
    store: Store,
    context: DeliveryContext,
    metrics: DeliveryMetrics,
    arbiter: Arbiter,
    subscriptions: Mutex<HashMap<String, Running>>,
}

struct Running {
    sub: Subscription,
    actor: Option<Addr<DeliveryActor>>,
    metrics: SubscriptionMetrics,
}

/// How a subscription is doing: `None` for the circuit when no actor runs
/// (paused, or its station is gone).
pub struct Health {
    pub circuit: Option<CircuitState>,
    pub metrics: SubscriptionMetrics,
}

/// What the delivery engine is configured with.
#[derive(Debug, Clone, Default)]
pub struct DeliverySettings {
    pub policy: UrlPolicy,
    pub circuit: CircuitSettings,
    /// Where alerts about relayed requests that will not arrive go.
    pub alert_url: Option<String>,
    /// How long finished deliveries are kept (zero: forever).
    pub record_retention: std::time::Duration,
    /// The TLS trust of outgoing requests, when not awc's default (the web
    /// PKI roots): `--outbound-tls-ca`.
    pub outbound_tls: Option<Arc<rustls::ClientConfig>>,
}

impl Deliveries {
    /// Loads every subscription and starts the unpaused ones. Must run
    /// inside an actix system.
    pub fn start(
        store: Store,
        group_commit: GroupCommit,
        settings: DeliverySettings,
        registry: &prometheus::Registry,
        stations: &StationDirectory,
    ) -> BrokerResult<Self> {
        let metrics =
            DeliveryMetrics::register(registry).expect("the delivery metrics are registered once");
        let deliveries = Self {
            store,
            context: DeliveryContext {
                group_commit,
                policy: Arc::new(settings.policy),
                circuit: settings.circuit,
                relay_waiters: Arc::new(RelayWaiters::default()),
                alert_url: settings.alert_url,
                record_retention: settings.record_retention,
                outbound_tls: settings.outbound_tls,
            },
            metrics,
            arbiter: Arbiter::new(),
            subscriptions: Mutex::new(HashMap::new()),
        };
        for record in deliveries.store.subscription_records()? {
            let sub = Subscription::from_storage(&record)?;
            let metrics = deliveries.metrics.for_subscription(&sub);
            let actor = if sub.paused {
                None
            } else {
                deliveries.run(&sub, &metrics, stations)?
            };
            deliveries.subscriptions.lock().insert(
                sub.id.clone(),
                Running {
                    sub,
                    actor,
                    metrics,
                },
            );
        }
        Ok(deliveries)
    }

    pub fn policy(&self) -> &UrlPolicy {
        &self.context.policy
    }

    pub fn relay_waiters(&self) -> &RelayWaiters {
        &self.context.relay_waiters
    }

    /// Starts the subscription's actor; `None` when its station is gone.
    fn run(
        &self,
        sub: &Subscription,
        metrics: &SubscriptionMetrics,
        stations: &StationDirectory,
    ) -> BrokerResult<Option<Addr<DeliveryActor>>> {
        let Some(station) = stations.get(&sub.station) else {
            tracing::warn!(subscription = %sub.id, station = %sub.station, "the subscription's station is gone; not delivering");
            return Ok(None);
        };
        let log = DeliveryLog::new(self.store.open_subscription_tree(&sub.id)?);
        let (sub, metrics, context) = (sub.clone(), metrics.clone(), self.context.clone());
        Ok(Some(DeliveryActor::start_in_arbiter(
            &self.arbiter.handle(),
            move |_| DeliveryActor::new(sub, station, log, metrics, context),
        )))
    }

    /// Stores a new subscription and starts delivering.
    pub fn create(&self, sub: Subscription, stations: &StationDirectory) -> BrokerResult<()> {
        sub.validate(&self.context.policy)?;
        let mut subscriptions = self.subscriptions.lock();
        if subscriptions.values().any(|r| r.sub.name == sub.name) {
            return Err(BrokerError::bad_request(format!(
                "a subscription named {} exists",
                sub.name
            )));
        }
        self.store.put_subscription(&sub.to_storage())?;
        let metrics = self.metrics.for_subscription(&sub);
        let actor = self.run(&sub, &metrics, stations)?;
        subscriptions.insert(
            sub.id.clone(),
            Running {
                sub,
                actor,
                metrics,
            },
        );
        Ok(())
    }

    /// Changes a subscription: `change` edits a copy, which must pass the
    /// same rules as a new one; the actor restarts with it (in-flight
    /// attempts are abandoned and stay pending).
    pub fn update(
        &self,
        id_or_name: &str,
        change: impl FnOnce(&mut Subscription) -> BrokerResult<()>,
        stations: &StationDirectory,
    ) -> BrokerResult<Subscription> {
        let id = self.find(id_or_name)?.id;
        let mut subscriptions = self.subscriptions.lock();
        let mut changed = subscriptions.get(&id).expect("just found").sub.clone();
        change(&mut changed)?;
        changed.validate(&self.context.policy)?;
        if subscriptions
            .values()
            .any(|r| r.sub.name == changed.name && r.sub.id != id)
        {
            return Err(BrokerError::bad_request(format!(
                "a subscription named {} exists",
                changed.name
            )));
        }
        self.store.put_subscription(&changed.to_storage())?;
        let running = subscriptions.get_mut(&id).expect("just found");
        if let Some(actor) = running.actor.take() {
            actor.do_send(Stop);
        }
        if running.sub.name != changed.name {
            self.metrics.forget(&running.sub);
            running.metrics = self.metrics.for_subscription(&changed);
        }
        running.sub = changed;
        if !running.sub.paused {
            running.actor = self.run(&running.sub, &running.metrics, stations)?;
        }
        Ok(running.sub.clone())
    }

    /// The circuit state and counters of a subscription.
    pub fn health(&self, id: &str) -> Option<Health> {
        let subscriptions = self.subscriptions.lock();
        let running = subscriptions.get(id)?;
        Some(Health {
            circuit: running
                .actor
                .as_ref()
                .map(|_| running.metrics.circuit_state()),
            metrics: running.metrics.clone(),
        })
    }

    /// A subscription by id or name.
    pub fn find(&self, id_or_name: &str) -> BrokerResult<Subscription> {
        let subscriptions = self.subscriptions.lock();
        subscriptions
            .get(id_or_name)
            .or_else(|| subscriptions.values().find(|r| r.sub.name == id_or_name))
            .map(|r| r.sub.clone())
            .ok_or_else(|| BrokerError::SubscriptionNotFound {
                subscription: id_or_name.to_owned(),
            })
    }

    /// Every subscription (of one station), by name.
    pub fn list(&self, station: Option<&str>) -> Vec<Subscription> {
        let mut all: Vec<Subscription> = self
            .subscriptions
            .lock()
            .values()
            .filter(|r| station.is_none_or(|s| r.sub.station.as_str() == s))
            .map(|r| r.sub.clone())
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Pauses (stops the actor) or resumes (starts it again, from where it
    /// was) a subscription.
    pub fn set_paused(
        &self,
        id_or_name: &str,
        paused: bool,
        stations: &StationDirectory,
    ) -> BrokerResult<Subscription> {
        let id = self.find(id_or_name)?.id;
        let mut subscriptions = self.subscriptions.lock();
        let running = subscriptions.get_mut(&id).expect("just found");
        if running.sub.paused == paused {
            return Ok(running.sub.clone());
        }
        running.sub.paused = paused;
        self.store.put_subscription(&running.sub.to_storage())?;
        if paused {
            if let Some(actor) = running.actor.take() {
                actor.do_send(Stop);
            }
        } else {
            running.actor = self.run(&running.sub, &running.metrics, stations)?;
        }
        Ok(running.sub.clone())
    }

    pub fn delete(&self, id_or_name: &str) -> BrokerResult<()> {
        let sub = self.find(id_or_name)?;
        if sub.relay {
            return Err(BrokerError::bad_request(
                "the relay's subscription is Depot's own: pause it instead",
            ));
        }
        let id = sub.id;
        let removed = self.subscriptions.lock().remove(&id);
        if let Some(running) = removed {
            self.metrics.forget(&running.sub);
            if let Some(actor) = running.actor {
                actor.do_send(Stop);
            }
        }
        self.store.remove_subscription(&id)
    }

    /// The delivery records of a subscription.
    pub fn log(&self, id_or_name: &str) -> BrokerResult<(Subscription, DeliveryLog)> {
        let sub = self.find(id_or_name)?;
        let log = DeliveryLog::new(self.store.open_subscription_tree(&sub.id)?);
        Ok((sub, log))
    }

    /// The delivery with this id, in whichever subscription it is.
    pub fn find_delivery(
        &self,
        id: &str,
    ) -> BrokerResult<(Subscription, DeliveryLog, DeliveryRecord)> {
        for sub in self.list(None) {
            let (sub, log) = self.log(&sub.id)?;
            if let Some(record) = log.find(id)? {
                return Ok((sub, log, record));
            }
        }
        Err(BrokerError::DeliveryNotFound { id: id.to_owned() })
    }

    /// Puts failed deliveries back in the queue: those with these ids, or
    /// all that failed since `failed_since_ms`. Returns how many.
    pub fn resend(
        &self,
        id_or_name: &str,
        ids: &[String],
        failed_since_ms: Option<u64>,
    ) -> BrokerResult<Vec<DeliveryRecord>> {
        let (sub, log) = self.log(id_or_name)?;
        let (failed, _) = log.deliveries(None, Some(DeliveryStatus::Failed), usize::MAX)?;
        let now = now_ms();
        let mut requeued = Vec::new();
        for mut record in failed {
            let chosen = ids.contains(&record.id)
                || failed_since_ms.is_some_and(|since| record.updated_at_ms >= since);
            if !chosen {
                continue;
            }
            record.set_status(DeliveryStatus::Pending);
            record.attempts_before_resend = record.attempts;
            record.next_attempt_at_ms = now;
            record.updated_at_ms = now;
            log.put(&record)?;
            requeued.push(record);
        }
        if let Some(missing) = ids.iter().find(|id| !requeued.iter().any(|r| &r.id == *id)) {
            return Err(BrokerError::bad_request(format!(
                "no failed delivery {missing} in subscription {}",
                sub.name
            )));
        }
        let running = self
            .subscriptions
            .lock()
            .get(&sub.id)
            .and_then(|r| r.actor.clone());
        if let Some(actor) = running {
            actor.do_send(Requeue(requeued.clone()));
        }
        Ok(requeued)
    }

    pub fn shutdown(&self) {
        self.arbiter.stop();
    }
}
