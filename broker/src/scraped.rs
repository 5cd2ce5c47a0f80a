//! What the collectors read at each scrape (`station_metrics`,
//! `consumer_lag`, `work_queue_metrics`) share: each refills a fixed set of metrics under a
//! lock, then reports their descriptions and families together.

use prometheus::{
    IntGaugeVec,
    core::{Collector, Desc},
    proto::MetricFamily,
};

/// The descriptions of `metrics`, for [`Collector::desc`].
pub fn descs(metrics: &[&dyn Collector]) -> Vec<Desc> {
    metrics
        .iter()
        .flat_map(|metric| metric.desc())
        .cloned()
        .collect()
}

/// The families of `metrics`, for [`Collector::collect`].
pub fn families(metrics: &[&dyn Collector]) -> Vec<MetricFamily> {
    metrics.iter().flat_map(|metric| metric.collect()).collect()
}

/// Sets a gauge's series to a count (saturating: gauges are signed).
pub fn set(gauges: &IntGaugeVec, labels: &[&str], value: u64) {
    gauges
        .with_label_values(labels)
        .set(i64::try_from(value).unwrap_or(i64::MAX));
}
