//! Per-subscription delivery metrics, registered in the broker's Prometheus
//! registry (`depot_broker_delivery_*`, labelled by subscription name and
//! station). The same counters answer `depot subscriptions info`, so the
//! CLI and `/metrics` never disagree.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::delivery::{Subscription, circuit::CircuitState};

/// Attempt latency buckets in seconds, from 1 ms to 60 s.
const ATTEMPT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

const LABELS: &[&str] = &["subscription", "station"];

/// The metric families, one series per subscription.
#[derive(Clone)]
pub struct DeliveryMetrics {
    delivered: IntCounterVec,
    dead_lettered: IntCounterVec,
    failed_attempts: IntCounterVec,
    retried: IntCounterVec,
    pending: IntGaugeVec,
    circuit: IntGaugeVec,
    attempt_seconds: HistogramVec,
}

/// One subscription's series, resolved once so the delivery actor updates
/// plain atomics.
#[derive(Clone)]
pub struct SubscriptionMetrics {
    pub delivered: IntCounter,
    /// Deliveries that failed for good (now in the subscription's dead
    /// letters).
    pub dead_lettered: IntCounter,
    pub failed_attempts: IntCounter,
    pub retried: IntCounter,
    /// Deliveries waiting or in flight.
    pub pending: IntGauge,
    /// 0 closed, 1 half-open, 2 open.
    pub circuit: IntGauge,
    pub attempt_seconds: Histogram,
}

impl DeliveryMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), LABELS);
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), LABELS);
        let metrics = Self {
            delivered: counter("delivery_delivered_total", "Deliveries completed (2xx)")?,
            dead_lettered: counter(
                "delivery_dead_lettered_total",
                "Deliveries failed for good, now dead letters",
            )?,
            failed_attempts: counter(
                "delivery_failed_attempts_total",
                "Attempts that did not deliver",
            )?,
            retried: counter("delivery_retried_total", "Failed attempts scheduled again")?,
            pending: gauge("delivery_pending", "Deliveries waiting or in flight")?,
            circuit: gauge(
                "delivery_circuit_state",
                "Circuit breaker: 0 closed, 1 half-open, 2 open",
            )?,
            attempt_seconds: HistogramVec::new(
                HistogramOpts::new("delivery_attempt_duration_seconds", "Attempt latency")
                    .buckets(ATTEMPT_BUCKETS.to_vec()),
                LABELS,
            )?,
        };
        registry.register(Box::new(metrics.delivered.clone()))?;
        registry.register(Box::new(metrics.dead_lettered.clone()))?;
        registry.register(Box::new(metrics.failed_attempts.clone()))?;
        registry.register(Box::new(metrics.retried.clone()))?;
        registry.register(Box::new(metrics.pending.clone()))?;
        registry.register(Box::new(metrics.circuit.clone()))?;
        registry.register(Box::new(metrics.attempt_seconds.clone()))?;
        Ok(metrics)
    }

    pub fn for_subscription(&self, sub: &Subscription) -> SubscriptionMetrics {
        let labels = [sub.name.as_str(), sub.station.as_str()];
        SubscriptionMetrics {
            delivered: self.delivered.with_label_values(&labels),
            dead_lettered: self.dead_lettered.with_label_values(&labels),
            failed_attempts: self.failed_attempts.with_label_values(&labels),
            retried: self.retried.with_label_values(&labels),
            pending: self.pending.with_label_values(&labels),
            circuit: self.circuit.with_label_values(&labels),
            attempt_seconds: self.attempt_seconds.with_label_values(&labels),
        }
    }

    /// Drops a deleted (or renamed) subscription's series.
    pub fn forget(&self, sub: &Subscription) {
        let labels = [sub.name.as_str(), sub.station.as_str()];
        // A series never touched is absent; that is fine.
        let _ = self.delivered.remove_label_values(&labels);
        let _ = self.dead_lettered.remove_label_values(&labels);
        let _ = self.failed_attempts.remove_label_values(&labels);
        let _ = self.retried.remove_label_values(&labels);
        let _ = self.pending.remove_label_values(&labels);
        let _ = self.circuit.remove_label_values(&labels);
        let _ = self.attempt_seconds.remove_label_values(&labels);
    }
}

impl SubscriptionMetrics {
    pub fn set_circuit(&self, state: CircuitState) {
        self.circuit.set(state.gauge());
    }

    pub fn circuit_state(&self) -> CircuitState {
        match self.circuit.get() {
            2 => CircuitState::Open,
            1 => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }
}
