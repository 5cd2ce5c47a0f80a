//! Work queues' metrics, read from what each station's actor last
//! published ([`crate::station::WorkQueues`]) when metrics are scraped:
//!
//! - `depot_broker_consumer_leased{station,consumer}`: messages its workers
//!   hold leased now (handed out, not acknowledged);
//! - `depot_broker_consumer_acknowledged_ahead{station,consumer}`:
//!   acknowledged beyond its position, waiting for a message before them;
//! - `depot_broker_consumer_redeliveries_total{station,consumer}`: messages
//!   handed out again since the broker started (a lease ended or was given
//!   back): workers that crash or time out show here first;
//! - `depot_broker_consumer_dead_lettered_total{station,consumer}`: poison
//!   messages, moved to the dead letters past a fetch's `max_deliveries`.

use parking_lot::Mutex;
use prometheus::{
    IntCounterVec, IntGaugeVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::{registry::StationDirectory, scraped};

/// Work queues one scrape reports at most, as for consumer lag.
const MAX_QUEUES: usize = 10_000;

/// The collector; register it once in the broker's registry.
pub struct WorkQueueMetrics {
    directory: StationDirectory,
    /// Refilled on every scrape; the lock keeps two scrapes from mixing.
    series: Mutex<Series>,
    desc: Vec<Desc>,
}

struct Series {
    leased: IntGaugeVec,
    acknowledged_ahead: IntGaugeVec,
    redeliveries: IntCounterVec,
    dead_lettered: IntCounterVec,
}

impl Series {
    fn all(&self) -> [&dyn Collector; 4] {
        [
            &self.leased,
            &self.acknowledged_ahead,
            &self.redeliveries,
            &self.dead_lettered,
        ]
    }
}

const LABELS: [&str; 2] = ["station", "consumer"];

fn gauge(name: &str, help: &str) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), &LABELS).expect("a valid metric")
}

fn counter(name: &str, help: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &LABELS).expect("a valid metric")
}

impl WorkQueueMetrics {
    pub fn new(directory: StationDirectory) -> Self {
        let series = Series {
            leased: gauge(
                "consumer_leased",
                "Messages a consumer's workers hold leased (handed out, not acknowledged)",
            ),
            acknowledged_ahead: gauge(
                "consumer_acknowledged_ahead",
                "Messages acknowledged beyond a consumer's position, waiting for one before them",
            ),
            redeliveries: counter(
                "consumer_redeliveries_total",
                "Messages handed out again to a consumer's workers (a lease ended or was given back)",
            ),
            dead_lettered: counter(
                "consumer_dead_lettered_total",
                "Messages a consumer's workers never acknowledged, moved to the dead letters past max_deliveries",
            ),
        };
        let desc = scraped::descs(&series.all());
        Self {
            directory,
            series: Mutex::new(series),
            desc,
        }
    }
}

impl Collector for WorkQueueMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series = self.series.lock();
        series.leased.reset();
        series.acknowledged_ahead.reset();
        series.redeliveries.reset();
        series.dead_lettered.reset();
        let queues = self.directory.all().into_iter().flat_map(|station| {
            let name = station.name.to_string();
            let all = station.work_queues.all();
            all.into_iter()
                .map(move |(consumer, stats)| (name.clone(), consumer, stats))
        });
        for (station, consumer, stats) in queues.take(MAX_QUEUES) {
            let labels = [station.as_str(), consumer.as_str()];
            scraped::set(&series.leased, &labels, stats.leased);
            scraped::set(
                &series.acknowledged_ahead,
                &labels,
                stats.acknowledged_ahead,
            );
            series
                .redeliveries
                .with_label_values(&labels)
                .inc_by(stats.redeliveries);
            series
                .dead_lettered
                .with_label_values(&labels)
                .inc_by(stats.dead_lettered);
        }
        scraped::families(&series.all())
    }
}
