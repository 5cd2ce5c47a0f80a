//! Per-station gauges, read from the stations when metrics are scraped
//! (nothing is kept up to date on the produce path):
//!
//! - `depot_broker_stations`: how many stations the broker holds;
//! - `depot_broker_station_messages{station}`: messages stored now;
//! - `depot_broker_station_bytes{station}`: their payload bytes;
//! - `depot_broker_station_next_offset{station}`: the durable head, so
//!   `rate(depot_broker_station_next_offset[1m])` is the station's produce
//!   rate.
//!
//! An operator's dashboard shows where the data is and where it comes in
//! without a `depot stations list` per look.

use parking_lot::Mutex;
use prometheus::{
    IntGauge, IntGaugeVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::{registry::StationDirectory, scraped};

/// Stations one scrape reports at most (the default `--max-stations`), so a
/// scrape stays quick and bounded however many stations there are.
const MAX_STATIONS: usize = 10_000;

/// The collector; register it once in the broker's registry.
pub struct StationMetrics {
    directory: StationDirectory,
    /// Refilled on every scrape; the lock keeps two scrapes from mixing.
    gauges: Mutex<Gauges>,
    desc: Vec<Desc>,
}

struct Gauges {
    stations: IntGauge,
    messages: IntGaugeVec,
    bytes: IntGaugeVec,
    next_offset: IntGaugeVec,
}

impl Gauges {
    fn all(&self) -> [&dyn Collector; 4] {
        [
            &self.stations,
            &self.messages,
            &self.bytes,
            &self.next_offset,
        ]
    }
}

fn per_station(name: &str, help: &str) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), &["station"]).expect("a valid metric")
}

impl StationMetrics {
    pub fn new(directory: StationDirectory) -> Self {
        let gauges = Gauges {
            stations: IntGauge::new("stations", "Stations the broker holds")
                .expect("a valid metric"),
            messages: per_station("station_messages", "Messages stored in a station"),
            bytes: per_station(
                "station_bytes",
                "Payload bytes of the messages stored in a station",
            ),
            next_offset: per_station(
                "station_next_offset",
                "A station's durable head: the offset its next message gets (its rate is the produce rate)",
            ),
        };
        let desc = scraped::descs(&gauges.all());
        Self {
            directory,
            gauges: Mutex::new(gauges),
            desc,
        }
    }
}

impl Collector for StationMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauges = self.gauges.lock();
        for vec in [&gauges.messages, &gauges.bytes, &gauges.next_offset] {
            vec.reset();
        }
        let stations = self.directory.all();
        gauges
            .stations
            .set(i64::try_from(stations.len()).unwrap_or(i64::MAX));
        for station in stations.iter().take(MAX_STATIONS) {
            let Ok(counters) = station.log.counters() else {
                continue;
            };
            let head = *station.durable_head.borrow();
            let name = [station.name.as_str()];
            let first = counters.first_offset;
            scraped::set(&gauges.messages, &name, head.saturating_sub(first));
            scraped::set(&gauges.bytes, &name, counters.bytes);
            scraped::set(&gauges.next_offset, &name, head);
        }
        scraped::families(&gauges.all())
    }
}
