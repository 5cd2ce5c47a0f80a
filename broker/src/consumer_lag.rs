//! `depot_broker_consumer_lag{station, consumer}`: how many stored messages
//! each consumer with a position has not committed past, read from the
//! positions when metrics are scraped (nothing is kept up to date on the
//! produce path). An operator's first question about a consumer is whether
//! it keeps up; this answers it on the dashboard, not only in
//! `depot consumers list`.

use parking_lot::Mutex;
use prometheus::{
    IntGaugeVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::{registry::StationDirectory, scraped};

/// Series one scrape reports at most: a broker with many stations and
/// consumers still answers a scrape quickly and in bounded memory.
const MAX_SERIES: usize = 10_000;

/// The collector; register it once in the broker's registry.
pub struct ConsumerLag {
    directory: StationDirectory,
    /// Refilled on every scrape; the lock keeps two scrapes from mixing.
    gauges: Mutex<IntGaugeVec>,
    desc: Vec<Desc>,
}

impl ConsumerLag {
    pub fn new(directory: StationDirectory) -> Self {
        let gauges = IntGaugeVec::new(
            Opts::new(
                "consumer_lag",
                "Messages stored at or after a consumer's committed position, by station and consumer",
            ),
            &["station", "consumer"],
        )
        .expect("a valid metric");
        let desc = gauges.desc().into_iter().cloned().collect();
        Self {
            directory,
            gauges: Mutex::new(gauges),
            desc,
        }
    }
}

/// Messages at or after `next_offset` among those stored, `first..head`.
pub fn lag(next_offset: u64, first: u64, head: u64) -> u64 {
    head.saturating_sub(next_offset.max(first))
}

impl Collector for ConsumerLag {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauges = self.gauges.lock();
        gauges.reset();
        let mut series = 0;
        'stations: for station in self.directory.all() {
            let (Ok(positions), Ok(counters)) =
                (station.log.positions().all(), station.log.counters())
            else {
                continue;
            };
            let head = *station.durable_head.borrow();
            for (consumer, position) in positions {
                if series == MAX_SERIES {
                    break 'stations;
                }
                let lag = lag(position.next_offset, counters.first_offset, head);
                scraped::set(&gauges, &[station.name.as_str(), &consumer], lag);
                series += 1;
            }
        }
        gauges.collect()
    }
}
