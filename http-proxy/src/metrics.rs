//! Prometheus metrics of one proxy, served at `GET /metrics`: requests by
//! route and status, request latency by route, messages produced, the
//! latency of broker round trips, and WebSocket connections (open, and
//! closed by the proxy by reason).

use std::{future::Future, time::Duration};

use depot_schemas::wire::ProduceOutcome;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Latency buckets in seconds, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// Cheap to clone: every metric is shared.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    messages_produced: IntCounter,
    /// Produce calls made to the broker: fewer than single produces when
    /// they are coalesced ([`crate::coalesce`]).
    produce_calls: IntCounter,
    broker_round_trip_seconds: HistogramVec,
    /// Open WebSocket connections.
    pub ws_connections: IntGauge,
    /// WebSocket connections closed by the proxy, by reason.
    pub ws_closed: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("depot_proxy".into()), None).expect("valid prefix");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let messages_produced =
            IntCounter::new("messages_produced_total", "Messages the broker stored")
                .expect("valid metric");
        let produce_calls = IntCounter::new(
            "broker_produce_calls_total",
            "Produce calls made to the broker; single produces read in the same event-loop turn share one",
        )
        .expect("valid metric");
        let broker_round_trip_seconds = HistogramVec::new(
            HistogramOpts::new(
                "broker_round_trip_seconds",
                "Broker call latency by operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let ws_connections =
            IntGauge::new("ws_connections", "Open WebSocket connections").expect("valid metric");
        let ws_closed = IntCounterVec::new(
            Opts::new(
                "ws_closed_total",
                "WebSocket connections closed by the proxy, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(messages_produced.clone()),
            Box::new(produce_calls.clone()),
            Box::new(broker_round_trip_seconds.clone()),
            Box::new(ws_connections.clone()),
            Box::new(ws_closed.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        Self {
            registry,
            requests,
            request_seconds,
            messages_produced,
            produce_calls,
            broker_round_trip_seconds,
            ws_connections,
            ws_closed,
        }
    }

    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.request_seconds
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Awaits one produce call to the broker (batch or coalesced singles),
    /// counting it, timing it, and counting the messages it stored.
    pub async fn produce_call<E>(
        &self,
        call: impl Future<Output = Result<Vec<ProduceOutcome>, E>>,
    ) -> Result<Vec<ProduceOutcome>, E> {
        let started = std::time::Instant::now();
        self.produce_calls.inc();
        let outcomes = call.await;
        self.broker_call("produce", started.elapsed());
        if let Ok(outcomes) = &outcomes {
            let stored = outcomes.iter().filter(|o| o.is_stored()).count();
            self.messages_produced.inc_by(stored as u64);
        }
        outcomes
    }

    pub fn broker_call(&self, operation: &str, elapsed: Duration) {
        self.broker_round_trip_seconds
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to memory");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
