//! Webhook subscriptions: create, inspect, pause, resume, delete, and their
//! deliveries. Administrators only.

use std::time::Duration;

use uuid::Uuid;

use depot_schemas::storage::{DeliveryAttemptRecord, DeliveryRecord, DeliveryStatus};

use crate::{
    auth::Principal,
    broker::Broker,
    clock::now_ms,
    delivery::{
        DeliveryMode, RetrySchedule, Subscription, WebhookSecret,
        registry::Health,
        sender::PayloadFormat,
        subscription::{DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT},
    },
    error::{BrokerError, BrokerResult},
    station::{Message, ReadLimits, StationName},
};

/// What a client asks for; `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    pub name: String,
    pub description: String,
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
    /// Attempts per second at most.
    pub max_rate: Option<u32>,
}

/// What a client changes; `None` keeps what is there.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub max_attempts: Option<u32>,
    pub retry_schedule: Option<String>,
    pub timeout: Option<Duration>,
    pub format: Option<String>,
    pub filter: Option<Vec<(String, String)>>,
    pub ordered: Option<bool>,
    pub concurrency: Option<u32>,
    /// `Some(0)` removes the limit.
    pub max_rate: Option<u32>,
}

/// A subscription, how far it has got and how it is doing.
pub struct SubscriptionState {
    pub sub: Subscription,
    /// The next offset it will consider.
    pub cursor: u64,
    pub health: Option<Health>,
}

/// A delivery and the id of its subscription.
pub type SubscriptionDelivery = (String, DeliveryRecord);

/// One delivery with its subscription, attempts and message (unless
/// retention removed it).
pub struct DeliveryView {
    pub sub: Subscription,
    pub record: DeliveryRecord,
    pub attempts: Vec<DeliveryAttemptRecord>,
    pub message: Option<Message>,
}

impl Broker {
    pub fn create_subscription(
        &self,
        who: &Principal,
        new: NewSubscription,
    ) -> BrokerResult<SubscriptionState> {
        who.require_admin()?;
        let station = self.station(&StationName::parse(&new.station)?)?;
        check_description(&new.description)?;
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
        if new.max_rate == Some(0) {
            return Err(bad("a max rate is at least 1 attempt per second".into()));
        }
        let start_offset = new
            .from_offset
            .unwrap_or_else(|| *station.durable_head.borrow());
        let sub = Subscription {
            id: Uuid::now_v7().to_string(),
            name: new.name,
            description: new.description,
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
            max_rate: new.max_rate,
            paused: false,
            created_at_ms: now_ms(),
            created_by: who.username.clone(),
            start_offset,
            relay: false,
        };
        self.inner
            .deliveries
            .create(sub.clone(), &self.inner.directory)?;
        self.with_cursor(sub)
    }

    /// Changes a subscription; it restarts with the change.
    pub fn update_subscription(
        &self,
        who: &Principal,
        id: &str,
        change: SubscriptionChange,
    ) -> BrokerResult<SubscriptionState> {
        who.require_admin()?;
        let bad = BrokerError::bad_request;
        let sub = self.inner.deliveries.update(
            id,
            |sub| {
                if let Some(name) = change.name {
                    sub.name = name;
                }
                if let Some(description) = change.description {
                    check_description(&description)?;
                    sub.description = description;
                }
                if let Some(url) = change.url {
                    sub.url = url;
                }
                if let Some(secret) = &change.secret {
                    sub.secret = WebhookSecret::parse(secret).map_err(bad)?;
                }
                if let Some(max_attempts) = change.max_attempts {
                    sub.max_attempts = max_attempts;
                }
                if let Some(schedule) = &change.retry_schedule {
                    sub.schedule = RetrySchedule::parse(schedule).map_err(bad)?;
                }
                if let Some(timeout) = change.timeout {
                    sub.timeout = timeout;
                }
                if let Some(format) = &change.format {
                    sub.format = PayloadFormat::parse(format).map_err(bad)?;
                }
                if let Some(filter) = change.filter {
                    sub.filter = filter;
                }
                let (ordered, concurrency) = sub.mode.parts();
                let ordered = change.ordered.unwrap_or(ordered);
                sub.mode = if ordered {
                    DeliveryMode::Ordered
                } else if change.ordered == Some(false) && concurrency == 1 {
                    // From ordered to concurrent: the default, unless given.
                    DeliveryMode::Concurrent(change.concurrency.unwrap_or(DEFAULT_CONCURRENCY))
                } else {
                    DeliveryMode::Concurrent(change.concurrency.unwrap_or(concurrency))
                };
                if let Some(rate) = change.max_rate {
                    sub.max_rate = (rate > 0).then_some(rate);
                }
                Ok(())
            },
            &self.inner.directory,
        )?;
        self.with_cursor(sub)
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
    ) -> BrokerResult<(Vec<SubscriptionDelivery>, bool)> {
        who.require_admin()?;
        let (sub, log) = self.inner.deliveries.log(id)?;
        let (records, more) = log.deliveries(after, status, limit)?;
        let records = records.into_iter().map(|r| (sub.id.clone(), r)).collect();
        Ok((records, more))
    }

    /// Deliveries of every subscription (in creation order, each in offset
    /// order), of one status or all, after the delivery `after_id`, at most
    /// `limit`; and whether more follow.
    pub fn list_all_deliveries(
        &self,
        who: &Principal,
        status: Option<DeliveryStatus>,
        after_id: Option<&str>,
        limit: usize,
    ) -> BrokerResult<(Vec<SubscriptionDelivery>, bool)> {
        who.require_admin()?;
        let deliveries = &self.inner.deliveries;
        let mut subs = deliveries.list(None);
        // Ids are UUID v7: creation order.
        subs.sort_by(|a, b| a.id.cmp(&b.id));
        let (mut skip_to, mut after) = (None, None);
        if let Some(id) = after_id {
            let (sub, _, record) = deliveries.find_delivery(id)?;
            skip_to = Some(sub.id);
            after = Some(record.offset);
        }
        let mut found = Vec::new();
        for sub in subs {
            if let Some(first) = &skip_to {
                if &sub.id < first {
                    continue;
                }
                if &sub.id > first {
                    after = None;
                }
            }
            let (_, log) = deliveries.log(&sub.id)?;
            let (page, more) = log.deliveries(after, status, limit - found.len())?;
            found.extend(page.into_iter().map(|r| (sub.id.clone(), r)));
            if more || found.len() == limit {
                return Ok((found, true));
            }
        }
        Ok((found, false))
    }

    /// One delivery by id, whichever subscription it belongs to.
    pub fn get_delivery(&self, who: &Principal, id: &str) -> BrokerResult<DeliveryView> {
        who.require_admin()?;
        let (sub, log, record) = self.inner.deliveries.find_delivery(id)?;
        let attempts = log.attempts(record.offset)?;
        let limits = ReadLimits {
            max_messages: 1,
            max_bytes: 1,
        };
        let message = self
            .inner
            .directory
            .get(&sub.station)
            .and_then(|station| station.read(record.offset, limits).ok())
            .and_then(|(batch, _)| {
                batch
                    .messages
                    .into_iter()
                    .find(|m| m.offset == record.offset)
            });
        Ok(DeliveryView {
            sub,
            record,
            attempts,
            message,
        })
    }

    /// One attempt by id (`<delivery id>.<number>`), with its delivery's id.
    pub fn get_delivery_attempt(
        &self,
        who: &Principal,
        id: &str,
    ) -> BrokerResult<(String, DeliveryAttemptRecord)> {
        who.require_admin()?;
        let not_found = || BrokerError::DeliveryNotFound { id: id.to_owned() };
        let (delivery_id, number) = id.rsplit_once('.').ok_or_else(not_found)?;
        let number: u32 = number.parse().map_err(|_| not_found())?;
        let (_, log, record) = self.inner.deliveries.find_delivery(delivery_id)?;
        let attempt = log
            .attempts(record.offset)?
            .into_iter()
            .find(|a| a.number == number)
            .ok_or_else(not_found)?;
        Ok((record.id, attempt))
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
        let health = self.inner.deliveries.health(&sub.id);
        Ok(SubscriptionState {
            sub,
            cursor,
            health,
        })
    }
}

/// Longest subscription description accepted, in characters (as a
/// station's).
fn check_description(description: &str) -> BrokerResult<()> {
    crate::station::StationMeta::check_description(description)
}
