//! Acknowledgement latency, recorded per producer and merged.

use std::time::Duration;

use hdrhistogram::Histogram;

pub fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = (elapsed.as_micros() as u64).clamp(1, 60_000_000);
    histogram.record(micros).expect("within bounds");
}

/// "p50 0.41 ms, p99 1.20 ms, p999 3.10 ms"
pub fn summary(histogram: &Histogram<u64>) -> String {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
        ms(0.50),
        ms(0.99),
        ms(0.999)
    )
}
