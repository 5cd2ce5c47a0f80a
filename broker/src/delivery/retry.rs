//! When to try a delivery again, and whether to.
//!
//! Outcome rules: any 2xx is delivered. 408, 429, 5xx, timeouts and
//! connection errors are worth retrying, by the subscription's schedule and
//! honouring `Retry-After` (clamped to the schedule's range, so a receiver
//! can neither stall a subscription for days nor make Depot hammer it).
//! Any other status (3xx, the remaining 4xx) is a permanent failure: the
//! same request would fail the same way.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// The default schedule: the delay before each attempt.
pub const DEFAULT_SCHEDULE: [Duration; 10] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
    Duration::from_secs(12 * 60 * 60),
];

/// Scheduled delays are spread by up to this fraction either way, so the
/// retries of many deliveries that failed together do not arrive together.
const JITTER: f64 = 0.2;

/// Delays before attempts 1, 2, 3...; attempts past the end wait as long as
/// the last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrySchedule {
    /// Each delay with jitter.
    Steps(Vec<Duration>),
    /// The same delay before every retry (the seed's
    /// `delivery_attempt_delay`), without jitter; the first attempt is
    /// immediate.
    Fixed(Duration),
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::Steps(DEFAULT_SCHEDULE.to_vec())
    }
}

/// What one attempt's result means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again; the receiver may have said when.
    Retry {
        retry_after: Option<Duration>,
    },
    /// Do not try again.
    Permanent,
}

impl RetrySchedule {
    /// Parses `0s,5s,30s,...` (steps) or `fixed:60s`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(delay) = text.strip_prefix("fixed:") {
            return humantime::parse_duration(delay.trim())
                .map(Self::Fixed)
                .map_err(|e| format!("bad fixed delay '{delay}': {e}"));
        }
        let steps = text
            .split(',')
            .map(|step| {
                humantime::parse_duration(step.trim())
                    .or_else(|e| {
                        if step.trim() == "0" {
                            Ok(Duration::ZERO)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| format!("bad delay '{step}' in the retry schedule: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if steps.is_empty() {
            return Err("a retry schedule needs at least one delay".into());
        }
        Ok(Self::Steps(steps))
    }

    /// How long to wait before attempt `attempt` (1 is the first), given
    /// what the previous attempt's receiver asked for.
    pub fn delay_before(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let (scheduled, jitter) = match self {
            Self::Fixed(_) if attempt <= 1 => (Duration::ZERO, false),
            Self::Fixed(delay) => (*delay, false),
            Self::Steps(steps) => {
                let index = (attempt.max(1) as usize - 1).min(steps.len() - 1);
                (steps[index], true)
            }
        };
        if let Some(asked) = retry_after {
            let (low, high) = self.range();
            return asked.clamp(low, high);
        }
        if jitter && !scheduled.is_zero() {
            let factor = rand::rng().random_range(1.0 - JITTER..=1.0 + JITTER);
            scheduled.mul_f64(factor)
        } else {
            scheduled
        }
    }

    /// As stored and shown: (the steps in ms, the fixed delay in ms); the
    /// fixed delay is 0 for steps and at least 1 for a fixed schedule, so
    /// the pair says which kind it is.
    pub fn to_millis(&self) -> (Vec<u64>, u64) {
        match self {
            Self::Steps(steps) => (steps.iter().map(|d| d.as_millis() as u64).collect(), 0),
            Self::Fixed(delay) => (Vec::new(), (delay.as_millis() as u64).max(1)),
        }
    }

    /// The shortest non-zero and the longest delay of the schedule.
    fn range(&self) -> (Duration, Duration) {
        match self {
            Self::Fixed(delay) => (*delay, *delay),
            Self::Steps(steps) => {
                let high = steps.iter().copied().max().unwrap_or_default();
                let low = steps
                    .iter()
                    .copied()
                    .filter(|d| !d.is_zero())
                    .min()
                    .unwrap_or(high);
                (low, high)
            }
        }
    }
}

/// Classifies an HTTP answer.
pub fn verdict_for_status(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry { retry_after },
        _ => Verdict::Permanent,
    }
}

/// A timeout or a connection that failed: always worth retrying.
pub fn verdict_for_error() -> Verdict {
    Verdict::Retry { retry_after: None }
}

/// Reads `Retry-After`: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_the_rules() {
        for ok in [200, 201, 202, 203, 204, 299] {
            assert_eq!(verdict_for_status(ok, None), Verdict::Delivered, "{ok}");
        }
        for retry in [408, 429, 500, 502, 503, 599] {
            assert!(
                matches!(verdict_for_status(retry, None), Verdict::Retry { .. }),
                "{retry}"
            );
        }
        for permanent in [301, 400, 401, 404, 410, 422] {
            assert_eq!(
                verdict_for_status(permanent, None),
                Verdict::Permanent,
                "{permanent}"
            );
        }
    }

    #[test]
    fn the_default_schedule_starts_immediately_and_jitters_later_steps() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.delay_before(1, None), Duration::ZERO);
        for _ in 0..100 {
            let second = schedule.delay_before(2, None);
            assert!(
                (Duration::from_secs(4)..=Duration::from_secs(6)).contains(&second),
                "{second:?}"
            );
        }
        // Past the end: the last step.
        let late = schedule.delay_before(50, None);
        assert!(late >= Duration::from_secs(12 * 3600).mul_f64(0.8));
    }

    #[test]
    fn retry_after_is_honoured_within_the_schedule_range() {
        let schedule = RetrySchedule::parse("0s, 1s, 10s").unwrap();
        let asked = |s| schedule.delay_before(2, Some(Duration::from_secs(s)));
        assert_eq!(asked(3), Duration::from_secs(3));
        assert_eq!(asked(0), Duration::from_secs(1));
        assert_eq!(asked(86_400), Duration::from_secs(10));
    }

    #[test]
    fn fixed_schedules_are_exact() {
        let fixed = RetrySchedule::parse("fixed:60s").unwrap();
        assert_eq!(fixed.delay_before(1, None), Duration::ZERO);
        assert_eq!(fixed.delay_before(2, None), Duration::from_secs(60));
        assert_eq!(fixed.delay_before(9, None), Duration::from_secs(60));
        assert!(RetrySchedule::parse("").is_err());
        assert!(
            RetrySchedule::parse("5s,soon")
                .unwrap_err()
                .contains("soon")
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
