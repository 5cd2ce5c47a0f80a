//! [`Circuit`]: a subscription's circuit breaker. An endpoint that keeps
//! failing is not hammered: after a run of failed attempts the circuit
//! *opens* and no attempt starts until a probe is due; then one delivery
//! goes alone (*half-open*). Its success closes the circuit and everything
//! due goes again; its failure opens it for twice as long (up to a cap).
//!
//! Only failures that say the endpoint is unwell count (timeouts,
//! connection errors, 408, 429, 5xx). A 4xx is an answer about one message
//! from an endpoint that works, so it closes the circuit like a success.

use std::time::{Duration, Instant};

/// The longest an open circuit waits before probing.
pub const MAX_PROBE_DELAY: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Consecutive failed attempts that open the circuit; 0 never opens it.
    pub failures: u32,
    /// How long the first opening lasts before a probe.
    pub probe_after: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            failures: 20,
            probe_after: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }

    /// As a metric: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

/// What the circuit lets the delivery actor do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Start as many attempts as the mode allows.
    Go,
    /// Start one attempt, the probe, and no other until it ends.
    Probe,
    /// Start nothing; ask again at this time.
    WaitUntil(Instant),
    /// Start nothing; a probe is in flight.
    Wait,
}

#[derive(Debug)]
pub struct Circuit {
    settings: CircuitSettings,
    state: CircuitState,
    consecutive_failures: u32,
    /// While open: when the probe is due.
    open_until: Instant,
    /// The current opening's length (doubles after a failed probe).
    delay: Duration,
}

impl Circuit {
    pub fn new(settings: CircuitSettings) -> Self {
        Self {
            settings,
            state: CircuitState::Closed,
            consecutive_failures: 0,
            open_until: Instant::now(),
            delay: settings.probe_after,
        }
    }

    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// Whether attempts may start at `now`; moves an open circuit whose
    /// probe is due to half-open (the caller then starts exactly one).
    pub fn permit(&mut self, now: Instant, in_flight: usize) -> Permit {
        match self.state {
            CircuitState::Closed => Permit::Go,
            CircuitState::HalfOpen => Permit::Wait,
            CircuitState::Open if now < self.open_until => Permit::WaitUntil(self.open_until),
            // In-flight attempts from before the opening end first.
            CircuitState::Open if in_flight > 0 => Permit::Wait,
            CircuitState::Open => {
                self.state = CircuitState::HalfOpen;
                Permit::Probe
            }
        }
    }

    /// The endpoint answered (2xx, or a 4xx about the message). Returns
    /// true when this closed an open circuit.
    pub fn succeeded(&mut self) -> bool {
        self.consecutive_failures = 0;
        self.delay = self.settings.probe_after;
        let reopened = self.state != CircuitState::Closed;
        self.state = CircuitState::Closed;
        reopened
    }

    /// The endpoint failed (timeout, connection error, 408, 429, 5xx).
    /// Returns true when this opened the circuit.
    pub fn failed(&mut self, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state {
            CircuitState::HalfOpen => {
                self.delay = (self.delay * 2).min(MAX_PROBE_DELAY);
                self.open(now);
                true
            }
            CircuitState::Closed
                if self.settings.failures > 0
                    && self.consecutive_failures >= self.settings.failures =>
            {
                self.open(now);
                true
            }
            CircuitState::Closed | CircuitState::Open => false,
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = CircuitState::Open;
        self.open_until = now + self.delay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit(failures: u32) -> Circuit {
        Circuit::new(CircuitSettings {
            failures,
            probe_after: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_after_the_run_of_failures_and_probes_once_when_due() {
        let now = Instant::now();
        let mut c = circuit(3);
        assert!(!c.failed(now));
        assert!(!c.failed(now));
        assert_eq!(c.permit(now, 0), Permit::Go);
        assert!(c.failed(now));
        assert_eq!(c.state(), CircuitState::Open);
        let due = now + Duration::from_secs(10);
        assert_eq!(c.permit(now, 0), Permit::WaitUntil(due));
        assert_eq!(
            c.permit(due, 1),
            Permit::Wait,
            "in-flight attempts end first"
        );
        assert_eq!(c.permit(due, 0), Permit::Probe);
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert_eq!(c.permit(due, 1), Permit::Wait, "one probe at a time");
        assert!(c.succeeded());
        assert_eq!(c.permit(due, 0), Permit::Go);
    }

    #[test]
    fn a_failed_probe_doubles_the_wait_up_to_the_cap() {
        let mut now = Instant::now();
        let mut c = circuit(1);
        c.failed(now);
        let mut waits = Vec::new();
        for _ in 0..8 {
            let Permit::WaitUntil(due) = c.permit(now, 0) else {
                panic!("open")
            };
            waits.push((due - now).as_secs());
            now = due;
            assert_eq!(c.permit(now, 0), Permit::Probe);
            assert!(c.failed(now));
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 600, 600]);
        // Success resets the wait.
        c.permit(now + MAX_PROBE_DELAY, 0);
        c.succeeded();
        c.failed(now);
        assert_eq!(
            c.permit(now, 0),
            Permit::WaitUntil(now + Duration::from_secs(10))
        );
    }

    #[test]
    fn zero_failures_never_opens_and_successes_reset_the_run() {
        let now = Instant::now();
        let mut never = circuit(0);
        for _ in 0..1000 {
            assert!(!never.failed(now));
        }
        let mut c = circuit(2);
        c.failed(now);
        assert!(!c.succeeded());
        assert!(!c.failed(now));
        assert_eq!(c.state(), CircuitState::Closed);
    }
}
