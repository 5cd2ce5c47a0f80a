//! A webhook subscription as the delivery engine sees it, and the rules a
//! new one must pass.

use std::time::Duration;

use depot_schemas::storage::{self, Header, SubscriptionRecord};

use crate::{
    delivery::{RetrySchedule, UrlPolicy, WebhookSecret, sender::PayloadFormat},
    error::{BrokerError, BrokerResult},
    station::{Message, StationName},
};

pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_CONCURRENCY: u32 = 16;
/// Most deliveries one subscription may have in flight.
pub const MAX_CONCURRENCY: u32 = 1024;

/// In-flight discipline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// One delivery at a time, strictly in offset order (a message waits
    /// until the one before is delivered or has failed for good).
    Ordered,
    /// Up to this many deliveries in flight.
    Concurrent(u32),
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    /// Free text for people.
    pub description: String,
    pub station: StationName,
    pub url: String,
    pub secret: WebhookSecret,
    pub max_attempts: u32,
    pub schedule: RetrySchedule,
    pub timeout: Duration,
    pub format: PayloadFormat,
    /// Header key/value pairs a message must all carry (keys compared
    /// without case, values exactly).
    pub filter: Vec<(String, String)>,
    pub mode: DeliveryMode,
    /// Attempts per second at most.
    pub max_rate: Option<u32>,
    pub paused: bool,
    pub created_at_ms: u64,
    pub created_by: String,
    pub start_offset: u64,
    /// The internal relay subscription: each message names its own
    /// destination (see `delivery::relay`); `url` and `format` are unused.
    pub relay: bool,
}

impl DeliveryMode {
    /// As stored and shown: (ordered, deliveries in flight).
    pub fn parts(self) -> (bool, u32) {
        match self {
            Self::Ordered => (true, 1),
            Self::Concurrent(n) => (false, n),
        }
    }
}

impl Subscription {
    /// Whether `message` passes the header filter.
    pub fn matches(&self, message: &Message) -> bool {
        self.filter.iter().all(|(key, value)| {
            message
                .headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case(key) && v == value)
        })
    }

    /// How many deliveries may be in flight at once.
    pub fn in_flight_limit(&self) -> usize {
        match self.mode {
            DeliveryMode::Ordered => 1,
            DeliveryMode::Concurrent(n) => n.clamp(1, MAX_CONCURRENCY) as usize,
        }
    }

    /// Checks what a client asked for: the URL against the policy, sane
    /// limits.
    pub fn validate(&self, policy: &UrlPolicy) -> BrokerResult<()> {
        let bad = |reason: String| Err(BrokerError::bad_request(reason));
        if !self.relay
            && let Err(reason) = policy.check_url(&self.url)
        {
            return bad(reason);
        }
        if self.name.is_empty() || self.name.len() > 128 {
            return bad("a subscription name has 1 to 128 characters".into());
        }
        if self.max_attempts == 0 {
            return bad("max attempts must be at least 1".into());
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            return bad("the attempt timeout must be between 1 ms and 5 minutes".into());
        }
        if let DeliveryMode::Concurrent(n) = self.mode
            && !(1..=MAX_CONCURRENCY).contains(&n)
        {
            return bad(format!("concurrency must be 1 to {MAX_CONCURRENCY}"));
        }
        Ok(())
    }

    pub fn to_storage(&self) -> SubscriptionRecord {
        let (retry_schedule_ms, fixed_delay_ms) = self.schedule.to_millis();
        let (ordered, concurrency) = self.mode.parts();
        let mut record = SubscriptionRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            station: self.station.to_string(),
            url: self.url.clone(),
            secret: self.secret.key().to_vec().into(),
            max_attempts: self.max_attempts,
            retry_schedule_ms,
            fixed_delay_ms,
            timeout_ms: self.timeout.as_millis() as u64,
            format: 0,
            filter: self
                .filter
                .iter()
                .map(|(key, value)| Header {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            ordered,
            concurrency,
            max_rate: self.max_rate.unwrap_or(0),
            paused: self.paused,
            created_at_ms: self.created_at_ms,
            created_by: self.created_by.clone(),
            start_offset: self.start_offset,
            relay: self.relay,
            description: self.description.clone(),
        };
        record.set_format(match self.format {
            PayloadFormat::CloudEvents => storage::PayloadFormat::Cloudevents,
            PayloadFormat::CloudEventsBinary => storage::PayloadFormat::CloudeventsBinary,
            PayloadFormat::Raw => storage::PayloadFormat::Raw,
        });
        record
    }

    pub fn from_storage(record: &SubscriptionRecord) -> BrokerResult<Self> {
        let schedule = if record.fixed_delay_ms > 0 {
            RetrySchedule::Fixed(Duration::from_millis(record.fixed_delay_ms))
        } else if record.retry_schedule_ms.is_empty() {
            RetrySchedule::default()
        } else {
            RetrySchedule::Steps(
                record
                    .retry_schedule_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            )
        };
        Ok(Self {
            id: record.id.clone(),
            name: record.name.clone(),
            description: record.description.clone(),
            station: StationName::parse(&record.station)?,
            url: record.url.clone(),
            secret: WebhookSecret::from_key(record.secret.to_vec()),
            max_attempts: record.max_attempts,
            schedule,
            timeout: Duration::from_millis(record.timeout_ms),
            format: match record.format() {
                storage::PayloadFormat::Cloudevents => PayloadFormat::CloudEvents,
                storage::PayloadFormat::CloudeventsBinary => PayloadFormat::CloudEventsBinary,
                storage::PayloadFormat::Raw => PayloadFormat::Raw,
            },
            filter: record
                .filter
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            mode: if record.ordered {
                DeliveryMode::Ordered
            } else {
                DeliveryMode::Concurrent(record.concurrency)
            },
            max_rate: (record.max_rate > 0).then_some(record.max_rate),
            paused: record.paused,
            created_at_ms: record.created_at_ms,
            created_by: record.created_by.clone(),
            start_offset: record.start_offset,
            relay: record.relay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Subscription {
        Subscription {
            id: "01a2".into(),
            name: "billing".into(),
            description: "Invoices to the billing service".into(),
            station: StationName::parse("orders").unwrap(),
            url: "https://hooks.example.com/depot".into(),
            secret: WebhookSecret::generate(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            schedule: RetrySchedule::default(),
            timeout: DEFAULT_TIMEOUT,
            format: PayloadFormat::CloudEventsBinary,
            filter: vec![("kind".into(), "paid".into())],
            mode: DeliveryMode::Concurrent(DEFAULT_CONCURRENCY),
            max_rate: Some(50),
            paused: false,
            created_at_ms: 1,
            created_by: "root".into(),
            start_offset: 7,
            relay: false,
        }
    }

    #[test]
    fn storage_round_trips() {
        let sub = sample();
        let back = Subscription::from_storage(&sub.to_storage()).unwrap();
        assert_eq!(back.secret, sub.secret);
        assert_eq!(back.schedule, sub.schedule);
        assert_eq!(back.format, sub.format);
        assert_eq!(back.mode, sub.mode);
        assert_eq!(back.max_rate, sub.max_rate);
        assert_eq!(back.filter, sub.filter);
        assert_eq!(back.description, sub.description);
        let fixed = Subscription {
            schedule: RetrySchedule::Fixed(Duration::from_secs(60)),
            mode: DeliveryMode::Ordered,
            ..sample()
        };
        let back = Subscription::from_storage(&fixed.to_storage()).unwrap();
        assert_eq!(back.schedule, fixed.schedule);
        assert_eq!(back.in_flight_limit(), 1);
    }

    #[test]
    fn filters_need_every_pair() {
        let sub = sample();
        let message = |headers: &[(&str, &str)]| Message {
            offset: 0,
            id: "m".into(),
            timestamp_ms: 0,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            content_type: String::new(),
            payload: Default::default(),
            producer: "p".into(),
        };
        assert!(sub.matches(&message(&[("Kind", "paid"), ("x", "y")])));
        assert!(!sub.matches(&message(&[("kind", "refunded")])));
        assert!(!sub.matches(&message(&[])));
    }

    #[test]
    fn validation_applies_the_url_policy_and_limits() {
        let policy = UrlPolicy::default();
        sample().validate(&policy).unwrap();
        let internal = Subscription {
            url: "http://10.0.0.1/".into(),
            ..sample()
        };
        assert!(internal.validate(&policy).is_err());
        let zero = Subscription {
            max_attempts: 0,
            ..sample()
        };
        assert!(zero.validate(&policy).is_err());
    }
}
