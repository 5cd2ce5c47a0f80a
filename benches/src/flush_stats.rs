//! The broker's flush times, read from a proxy's `/metrics` after a run. A
//! durable acknowledgement waits for a flush, so the disk's slow moments are
//! the produce latency's tail: printed beside it, they say whether a tail is
//! the disk's.

use std::net::SocketAddr;

/// What `depot_broker_flush_seconds` counted since the broker started.
#[derive(Debug, PartialEq)]
pub struct FlushStats {
    pub flushes: u64,
    /// Flushes that took more than 10 ms.
    pub over_10_ms: u64,
    /// The upper bound of the slowest flush's bucket, in seconds (infinite
    /// past the last bucket).
    pub slowest_at_most: f64,
}

/// The flush metric's name in the broker's (and every proxy's) `/metrics`.
const METRIC: &str = "depot_broker_flush_seconds";

impl FlushStats {
    /// Reads the proxy's `/metrics`.
    pub fn read(proxy: SocketAddr) -> Result<Self, String> {
        let text = actix_rt::System::new().block_on(async move {
            let scheme = crate::bench_tls::scheme();
            let mut response = crate::bench_tls::awc_client(1, std::time::Duration::from_secs(30))
                .get(format!("{scheme}://{proxy}/metrics"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body = response
                .body()
                .limit(16 * 1024 * 1024)
                .await
                .map_err(|e| e.to_string())?;
            String::from_utf8(body.to_vec()).map_err(|e| e.to_string())
        })?;
        Self::parse(&text).ok_or_else(|| format!("no {METRIC} in the proxy's /metrics"))
    }

    /// Reads the histogram out of the Prometheus text format.
    pub fn parse(text: &str) -> Option<Self> {
        let count_prefix = format!("{METRIC}_count ");
        let bucket_prefix = format!("{METRIC}_bucket{{le=\"");
        let flushes: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix(&count_prefix))?
            .trim()
            .parse()
            .ok()?;
        // Cumulative counts by upper bound, in the order printed (ascending).
        let buckets: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|line| {
                let (bound, count) = line.strip_prefix(&bucket_prefix)?.split_once("\"} ")?;
                let bound = match bound {
                    "+Inf" => f64::INFINITY,
                    bound => bound.parse().ok()?,
                };
                Some((bound, count.trim().parse().ok()?))
            })
            .collect();
        let within_10_ms = buckets
            .iter()
            .rev()
            .find(|(bound, _)| *bound <= 0.01)
            .map_or(0, |(_, count)| *count);
        let slowest_at_most = buckets
            .iter()
            .find(|(_, count)| *count >= flushes)
            .map_or(f64::INFINITY, |(bound, _)| *bound);
        Some(Self {
            flushes,
            over_10_ms: flushes.saturating_sub(within_10_ms),
            slowest_at_most,
        })
    }
}

impl std::fmt::Display for FlushStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slowest = if self.slowest_at_most.is_finite() {
            format!("<= {} ms", self.slowest_at_most * 1000.0)
        } else {
            "beyond the last bucket".to_owned()
        };
        write!(
            f,
            "the broker's flushes: {}, {} of them over 10 ms, the slowest {slowest}",
            self.flushes, self.over_10_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_slow_flushes_and_slowest_bucket() {
        let text = "\
# TYPE depot_broker_flush_seconds histogram
depot_broker_flush_seconds_bucket{le=\"0.001\"} 90
depot_broker_flush_seconds_bucket{le=\"0.01\"} 97
depot_broker_flush_seconds_bucket{le=\"0.05\"} 99
depot_broker_flush_seconds_bucket{le=\"0.1\"} 100
depot_broker_flush_seconds_bucket{le=\"+Inf\"} 100
depot_broker_flush_seconds_sum 0.5
depot_broker_flush_seconds_count 100
";
        assert_eq!(
            FlushStats::parse(text),
            Some(FlushStats {
                flushes: 100,
                over_10_ms: 3,
                slowest_at_most: 0.1,
            })
        );
        assert_eq!(FlushStats::parse("depot_proxy_other 1\n"), None);
    }
}
