//! Leased fetches and acknowledgements of the core: a consumer shared by
//! several workers, as a work queue ([`crate::station::actor::LeaseMessages`]).
//! Each needs the caller's consume right on the station, as fetching does.

use std::time::{Duration, Instant};

use crate::{
    auth::Principal,
    broker::{
        Broker,
        consumers::{ConsumerSummary, summary},
        stations::{ask, not_found},
    },
    error::{BrokerError, BrokerResult},
    station::{
        ReadLimits,
        actor::{AckMessages, ChangeLeases, LeaseMessages, LeaseRef, LeasedMessage, LeasesChanged},
    },
};

/// Messages one consumer's workers may hold leased at once: bounds the
/// actor's memory for a consumer whose workers never acknowledge.
pub const MAX_LEASED_PER_CONSUMER: usize = 10_000;
/// The longest lease a fetch may ask for.
pub const MAX_LEASE: Duration = Duration::from_secs(12 * 3600);

impl Broker {
    /// Leases up to `limits` of `consumer`'s messages in `station` for
    /// `lease`: messages no other worker of the consumer holds, those
    /// whose lease ended first. A message whose lease ended
    /// `max_deliveries` times (0: no limit) goes to the dead letters
    /// instead. When there are none, waits up to `wait` (cut to
    /// `--max-fetch-wait`) for a message to land or a lease to end.
    /// Returns the messages and the station's durable head.
    #[allow(clippy::too_many_arguments)]
    pub async fn lease(
        &self,
        who: &Principal,
        station: &str,
        consumer: &str,
        limits: ReadLimits,
        lease: Duration,
        max_deliveries: u32,
        wait: Duration,
    ) -> BrokerResult<(Vec<LeasedMessage>, u64)> {
        let (station, consumer) = self.consumer_station(who, station, consumer)?;
        if lease.is_zero() || lease > MAX_LEASE {
            return Err(BrokerError::bad_request(format!(
                "a lease lasts from 1 ms to {}",
                humantime::format_duration(MAX_LEASE)
            )));
        }
        let deadline = Instant::now() + wait.min(self.inner.config.options.max_fetch_wait);
        loop {
            let leased = ask(&station, |reply| LeaseMessages {
                consumer: consumer.clone(),
                limits,
                lease,
                max_deliveries,
                worker: who.username.clone(),
                max_leased: MAX_LEASED_PER_CONSUMER,
                max_consumers: self.inner.config.options.max_consumers_per_station,
                reply,
            })
            .await;
            let leased = self.count_refusal(leased)?;
            if !leased.messages.is_empty() || Instant::now() >= deadline {
                return Ok((leased.messages, leased.head));
            }
            // Nothing for this worker yet: wait for a message past what the
            // lease saw, for a lease to end or change, or for the deadline.
            let until = leased
                .next_expiry
                .map_or(deadline, |ends| ends.min(deadline));
            let mut head = station.durable_head.clone();
            let mut lease_changes = leased.lease_changes;
            tokio::select! {
                landed = head.wait_for(|&head| head > leased.head) => {
                    if landed.is_err() {
                        return Err(not_found(&station.name));
                    }
                }
                // An error: the actor stopped; the next lease says why.
                _ = lease_changes.changed() => {}
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    /// Makes leases of `consumer`'s messages end `lease` from now (zero:
    /// handed out again at once); those the caller does not hold (any
    /// more) are reported lost.
    pub async fn change_leases(
        &self,
        who: &Principal,
        station: &str,
        consumer: &str,
        leases: Vec<LeaseRef>,
        lease: Duration,
    ) -> BrokerResult<LeasesChanged> {
        let (station, consumer) = self.consumer_station(who, station, consumer)?;
        if lease > MAX_LEASE {
            return Err(BrokerError::bad_request(format!(
                "a lease lasts at most {}",
                humantime::format_duration(MAX_LEASE)
            )));
        }
        if leases.len() > MAX_LEASED_PER_CONSUMER {
            return Err(BrokerError::bad_request(format!(
                "at most {MAX_LEASED_PER_CONSUMER} leases change at once (as many as a consumer holds)"
            )));
        }
        let changed = ask(&station, |reply| ChangeLeases {
            consumer,
            leases,
            lease,
            reply,
        })
        .await;
        self.count_refusal(changed)
    }

    /// Acknowledges messages a worker of `consumer` has handled; the
    /// consumer's position moves over those that follow it without a gap,
    /// durably before this returns.
    pub async fn acknowledge(
        &self,
        who: &Principal,
        station: &str,
        consumer: &str,
        offsets: Vec<u64>,
    ) -> BrokerResult<ConsumerSummary> {
        let (station, consumer) = self.consumer_station(who, station, consumer)?;
        let acked = ask(&station, |reply| AckMessages {
            consumer: consumer.clone(),
            offsets,
            committer: who.username.clone(),
            max_consumers: self.inner.config.options.max_consumers_per_station,
            reply,
        })
        .await;
        let position = self.count_refusal(acked)?;
        let first = station.log.counters()?.first_offset;
        Ok(summary(&station, first, consumer.as_str(), position))
    }
}
