//! Consumer positions of the core ([`crate::station::positions`]): commit,
//! list, delete, and where a fetch for a consumer starts. Each needs the
//! caller's consume pattern to match the station, as fetching does.

use std::collections::BTreeMap;

use depot_schemas::storage::ConsumerPosition;

use crate::{
    auth::Principal,
    broker::{Broker, stations::ask},
    error::{BrokerError, BrokerResult},
    refusals::Limit,
    station::{
        ConsumerName, QueueStats, StationHandle, StationName,
        actor::{CommitPosition, DeletePosition},
    },
};

/// A consumer's position as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSummary {
    pub station: String,
    pub consumer: String,
    pub next_offset: u64,
    /// Messages stored at or after `next_offset`.
    pub lag: u64,
    pub updated_at_ms: u64,
    pub updated_by: String,
    /// Its work queue's figures, when workers share it.
    pub work: QueueStats,
}

impl Broker {
    /// Sets `consumer`'s position in `station` to `next_offset` (creating
    /// the consumer), durable before it returns.
    pub async fn commit_position(
        &self,
        who: &Principal,
        station: &str,
        consumer: &str,
        next_offset: u64,
    ) -> BrokerResult<ConsumerSummary> {
        let (station, consumer) = self.consumer_station(who, station, consumer)?;
        let committed = ask(&station, |reply| CommitPosition {
            consumer: consumer.clone(),
            next_offset,
            committer: who.username.clone(),
            max_consumers: self.inner.config.options.max_consumers_per_station,
            reply,
        })
        .await;
        let committed = self.count_refusal(committed);
        let first = station.log.counters()?.first_offset;
        Ok(summary(&station, first, consumer.as_str(), committed?))
    }

    /// Every consumer with a position in `station`, by name.
    pub fn list_consumers(
        &self,
        who: &Principal,
        station: &str,
    ) -> BrokerResult<Vec<ConsumerSummary>> {
        let name = StationName::parse(station)?;
        who.require_consume(&name)?;
        let station = self.station(&name)?;
        let first = station.log.counters()?.first_offset;
        let mut positions: BTreeMap<String, ConsumerPosition> =
            station.log.positions().all()?.into_iter().collect();
        // A work queue whose position has not moved yet is a consumer too.
        for (consumer, _) in station.work_queues.all() {
            positions
                .entry(consumer)
                .or_insert_with(|| ConsumerPosition {
                    next_offset: first,
                    ..Default::default()
                });
        }
        Ok(positions
            .into_iter()
            .map(|(consumer, position)| summary(&station, first, &consumer, position))
            .collect())
    }

    /// Removes `consumer`'s position; an unknown consumer is an error.
    pub async fn delete_consumer(
        &self,
        who: &Principal,
        station: &str,
        consumer: &str,
    ) -> BrokerResult<()> {
        let (station, consumer) = self.consumer_station(who, station, consumer)?;
        let deleted = ask(&station, |reply| DeletePosition {
            consumer: consumer.clone(),
            reply,
        });
        match deleted.await? {
            true => Ok(()),
            false => Err(BrokerError::ConsumerNotFound {
                station: station.name.to_string(),
                consumer: consumer.as_str().to_owned(),
            }),
        }
    }

    /// Where a fetch or a subscription for `consumer` starts: its position,
    /// or the station's oldest message when it has none yet. The caller
    /// has checked the consume right on `station`.
    pub fn consumer_start(&self, station: &StationHandle, consumer: &str) -> BrokerResult<u64> {
        let consumer = ConsumerName::parse(consumer)?;
        let position = station.log.positions().get(&consumer)?;
        Ok(position.map_or(0, |p| p.next_offset))
    }

    /// `answer`, counting a refusal for `--max-consumers` in the metrics.
    pub(super) fn count_refusal<T>(&self, answer: BrokerResult<T>) -> BrokerResult<T> {
        if let Err(BrokerError::LimitReached { .. }) = &answer {
            self.inner.refusals.count(Limit::MaxConsumers);
        }
        answer
    }

    pub(super) fn consumer_station(
        &self,
        who: &Principal,
        station: &str,
        consumer: &str,
    ) -> BrokerResult<(StationHandle, ConsumerName)> {
        let name = StationName::parse(station)?;
        who.require_consume(&name)?;
        let consumer = ConsumerName::parse(consumer)?;
        Ok((self.station(&name)?, consumer))
    }
}

/// `position` as callers see it, with its lag among the messages stored
/// from `first` (the station's first offset) to the durable head.
pub(super) fn summary(
    station: &StationHandle,
    first: u64,
    consumer: &str,
    position: ConsumerPosition,
) -> ConsumerSummary {
    let head = *station.durable_head.borrow();
    ConsumerSummary {
        station: station.name.to_string(),
        consumer: consumer.to_owned(),
        next_offset: position.next_offset,
        lag: crate::consumer_lag::lag(position.next_offset, first, head),
        updated_at_ms: position.updated_at_ms,
        updated_by: position.updated_by,
        work: station.work_queues.get(consumer),
    }
}
