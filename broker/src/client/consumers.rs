//! Consumer positions through [`BrokerClient`]: fetch where a consumer left
//! off, commit how far it got, list and delete positions, and share a
//! consumer between workers with leased fetches and acknowledgements.

use std::time::Duration;

use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use super::{BrokerClient, ClientResult, Subscription, unexpected, wait_ms};

impl BrokerClient {
    /// Up to `max_messages` from `consumer`'s position in `station` (the
    /// oldest message when it has none yet), waiting up to `wait` when
    /// there is nothing yet (see [`BrokerClient::fetch_waiting`]). Commit
    /// the result's `next_offset` once the messages are handled.
    pub async fn fetch_for_consumer(
        &self,
        station: &str,
        consumer: &str,
        max_messages: u32,
        wait: Duration,
    ) -> ClientResult<wire::FetchResult> {
        self.fetch_with(consumer_fetch(station, consumer, max_messages, wait))
            .await
    }

    /// Leases up to `max_messages` of `consumer`'s messages to this worker
    /// for `lease` (a work queue: other workers of the consumer get other
    /// messages), waiting up to `wait` when there are none; acknowledge each
    /// one handled with [`BrokerClient::acknowledge`]. A message not
    /// acknowledged before its lease ends is handed out again (its
    /// `deliveries` one higher).
    pub async fn fetch_leased(
        &self,
        station: &str,
        consumer: &str,
        max_messages: u32,
        lease: Duration,
        wait: Duration,
    ) -> ClientResult<wire::FetchResult> {
        self.fetch_leased_at_most(station, consumer, max_messages, lease, 0, wait)
            .await
    }

    /// [`BrokerClient::fetch_leased`], where a message whose lease ended
    /// `max_deliveries` times unacknowledged is not handed out again but
    /// becomes a dead letter of the consumer.
    pub async fn fetch_leased_at_most(
        &self,
        station: &str,
        consumer: &str,
        max_messages: u32,
        lease: Duration,
        max_deliveries: u32,
        wait: Duration,
    ) -> ClientResult<wire::FetchResult> {
        self.fetch_with(wire::Fetch {
            lease_ms: wait_ms(lease).max(1),
            max_deliveries,
            ..consumer_fetch(station, consumer, max_messages, wait)
        })
        .await
    }

    /// Makes this worker's leases end `lease` from now: to keep a message
    /// it is still busy with, or (zero) to give it back at once. The
    /// answer lists the leases changed and those lost (acknowledged, or
    /// handed out again since).
    pub async fn change_leases(
        &self,
        station: &str,
        consumer: &str,
        leases: Vec<wire::LeaseRef>,
        lease: Duration,
    ) -> ClientResult<wire::LeasesChanged> {
        let op = Op::ChangeLeases(wire::ChangeLeases {
            station: station.to_owned(),
            consumer: consumer.to_owned(),
            leases,
            lease_ms: wait_ms(lease),
        });
        match self.call(op).await? {
            Reply::LeasesChanged(changed) => Ok(changed),
            other => Err(unexpected(other)),
        }
    }

    /// Acknowledges messages of a leased fetch once handled; the answer is
    /// the consumer's position afterwards (durable).
    pub async fn acknowledge(
        &self,
        station: &str,
        consumer: &str,
        offsets: Vec<u64>,
    ) -> ClientResult<wire::ConsumerInfo> {
        let op = Op::AckMessages(wire::AckMessages {
            station: station.to_owned(),
            consumer: consumer.to_owned(),
            offsets,
        });
        match self.call(op).await? {
            Reply::Consumer(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Follows `station` from `consumer`'s position (the oldest message when
    /// it has none yet); [`Subscription::start_offset`] says where that was.
    /// Commit with [`BrokerClient::commit_position`] as messages are
    /// handled.
    pub async fn subscribe_for_consumer(
        &self,
        station: &str,
        consumer: &str,
        credit: u32,
    ) -> ClientResult<Subscription> {
        let start = wire::subscribe::Start::Consumer(consumer.to_owned());
        self.subscribe_from(station, start, credit, "").await
    }

    /// Sets `consumer`'s position in `station`: the first offset it has
    /// not handled. Durable when this returns.
    pub async fn commit_position(
        &self,
        station: &str,
        consumer: &str,
        next_offset: u64,
    ) -> ClientResult<wire::ConsumerInfo> {
        let op = Op::CommitPosition(wire::CommitPosition {
            station: station.to_owned(),
            consumer: consumer.to_owned(),
            next_offset,
        });
        match self.call(op).await? {
            Reply::Consumer(info) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_consumers(&self, station: &str) -> ClientResult<Vec<wire::ConsumerInfo>> {
        let op = Op::ListConsumers(wire::ListConsumers {
            station: station.to_owned(),
        });
        match self.call(op).await? {
            Reply::ConsumerList(list) => Ok(list.consumers),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_consumer(&self, station: &str, consumer: &str) -> ClientResult<()> {
        let op = Op::DeleteConsumer(wire::DeleteConsumer {
            station: station.to_owned(),
            consumer: consumer.to_owned(),
        });
        match self.call(op).await? {
            Reply::Done(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

/// A fetch at `consumer`'s position.
fn consumer_fetch(station: &str, consumer: &str, max_messages: u32, wait: Duration) -> wire::Fetch {
    wire::Fetch {
        station: station.to_owned(),
        consumer: consumer.to_owned(),
        max_messages,
        max_wait_ms: wait_ms(wait),
        ..Default::default()
    }
}
