//! Webhook subscriptions: create, inspect, pause, resume, delete, and their
//! deliveries. Administrators only.

use std::time::Duration;

use uuid::Uuid;

use depot_schemas::storage::{DeliveryRecord, DeliveryStatus};

use crate::{
    auth::Principal,
    broker::Broker,
    clock::now_ms,
    delivery::{
        DeliveryMode, RetrySchedule, Subscription, WebhookSecret,
        sender::PayloadFormat,
        subscription::{DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT},
    },
    error::{BrokerError, BrokerResult},
    station::StationName,
};

/// What a client asks for; `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    pub name: String,
    pub station: String,
    pub url: String,
    /// `whsec_...`; generated when absent.
    pub secret: Option<String>,
    pub max_attempts: Option<u32>,
    /// `0s,5s,...` or `fixed:60s`.
    pub retry_schedule: Option<String>,
    pub timeout: Option<Duration>,
    /// `cloudevents`, `cloudevents-binary` or `raw`.
    pub format: Option<String>,
    pub filter: Vec<(String, String)>,
    pub ordered: bool,
    pub concurrency: Option<u32>,
    /// Deliver from this offset; from the station's head when absent.
    pub from_offset: Option<u64>,
}

/// A subscription and how far it has got.
pub type SubscriptionState = (Subscription, u64);

impl Broker {
    pub fn create_subscription(
        &self,
        who: &Principal,
        new: NewSubscription,
    ) -> BrokerResult<SubscriptionState> {
        who.require_admin()?;
        let station = self.station(&StationName::parse(&new.station)?)?;
        let bad = BrokerError::bad_request;
        let secret = match &new.secret {
            Some(text) => WebhookSecret::parse(text).map_err(bad)?,
            None => WebhookSecret::generate(),
        };
        let schedule = match &new.retry_schedule {
            Some(text) => RetrySchedule::parse(text).map_err(bad)?,
            None => RetrySchedule::default(),
        };
        let format = match &new.format {
            Some(name) => PayloadFormat::parse(name).map_err(bad)?,
            None => PayloadFormat::default(),
        };
        let start_offset = new
            .from_offset
            .unwrap_or_else(|| *station.durable_head.borrow());
        let sub = Subscription {
            id: Uuid::now_v7().to_string(),
            name: new.name,
            station: station.name.clone(),
            url: new.url,
            secret,
            max_attempts: new.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            schedule,
            timeout: new.timeout.unwrap_or(DEFAULT_TIMEOUT),
            format,
            filter: new.filter,
            mode: if new.ordered {
                DeliveryMode::Ordered
            } else {
                DeliveryMode::Concurrent(new.concurrency.unwrap_or(DEFAULT_CONCURRENCY))
            },
            max_rate: None,
            paused: false,
            created_at_ms: now_ms(),
            created_by: who.username.clone(),
            start_offset,
        };
        self.inner
            .deliveries
            .create(sub.clone(), &self.inner.directory)?;
        Ok((sub, start_offset))
    }

    pub fn list_subscriptions(
        &self,
        who: &Principal,
        station: Option<&str>,
    ) -> BrokerResult<Vec<SubscriptionState>> {
        who.require_admin()?;
        self.inner
            .deliveries
            .list(station)
            .into_iter()
            .map(|sub| self.with_cursor(sub))
            .collect()
    }

    pub fn describe_subscription(
        &self,
        who: &Principal,
        id: &str,
    ) -> BrokerResult<SubscriptionState> {
        who.require_admin()?;
        self.with_cursor(self.inner.deliveries.find(id)?)
    }

    pub fn pause_subscription(
        &self,
        who: &Principal,
        id: &str,
        paused: bool,
    ) -> BrokerResult<SubscriptionState> {
        who.require_admin()?;
        let sub = self
            .inner
            .deliveries
            .set_paused(id, paused, &self.inner.directory)?;
        self.with_cursor(sub)
    }

    pub fn delete_subscription(&self, who: &Principal, id: &str) -> BrokerResult<()> {
        who.require_admin()?;
        self.inner.deliveries.delete(id)
    }

    /// A subscription's deliveries after `after` (an offset), of one status
    /// or all, at most `limit`; and whether more follow.
    pub fn list_deliveries(
        &self,
        who: &Principal,
        id: &str,
        status: Option<DeliveryStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> BrokerResult<(Vec<DeliveryRecord>, bool)> {
        who.require_admin()?;
        let (_, log) = self.inner.deliveries.log(id)?;
        log.deliveries(after, status, limit)
    }

    /// Puts failed deliveries back in the queue (by id, or all failed
    /// since a time); durable before it answers. Returns how many.
    pub async fn resend_deliveries(
        &self,
        who: &Principal,
        id: &str,
        ids: &[String],
        failed_since_ms: Option<u64>,
    ) -> BrokerResult<usize> {
        who.require_admin()?;
        if ids.is_empty() && failed_since_ms.is_none() {
            return Err(BrokerError::bad_request(
                "name the deliveries to resend, or a time they failed since",
            ));
        }
        let requeued = self.inner.deliveries.resend(id, ids, failed_since_ms)?;
        self.inner.group_commit.commit().await?;
        Ok(requeued.len())
    }

    fn with_cursor(&self, sub: Subscription) -> BrokerResult<SubscriptionState> {
        let (_, log) = self.inner.deliveries.log(&sub.id)?;
        let cursor = log.cursor()?.unwrap_or(sub.start_offset);
        Ok((sub, cursor))
    }
}
