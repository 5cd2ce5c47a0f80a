//! Consumer positions' operations (commit, list, delete, acknowledge a
//! leased fetch's messages, change leases); a fetch at a consumer's
//! position, leased or not, is a `Fetch` with `consumer` set
//! (`operations`).

use std::time::Duration;

use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::{
    auth::Principal,
    broker::{Broker, ConsumerSummary},
    error::BrokerResult,
    station::actor::LeaseRef,
};

/// Runs `op` if it is a consumer operation; gives it back otherwise.
pub async fn run(broker: &Broker, who: &Principal, op: Op) -> Result<BrokerResult<Reply>, Op> {
    let answer = match op {
        Op::CommitPosition(commit) => broker
            .commit_position(who, &commit.station, &commit.consumer, commit.next_offset)
            .await
            .map(|summary| Reply::Consumer(consumer_info(summary))),
        Op::ListConsumers(list) => broker.list_consumers(who, &list.station).map(|all| {
            Reply::ConsumerList(wire::ConsumerList {
                consumers: all.into_iter().map(consumer_info).collect(),
            })
        }),
        Op::AckMessages(ack) => broker
            .acknowledge(who, &ack.station, &ack.consumer, ack.offsets)
            .await
            .map(|summary| Reply::Consumer(consumer_info(summary))),
        Op::ChangeLeases(change) => {
            let leases = change
                .leases
                .iter()
                .map(|lease| LeaseRef {
                    offset: lease.offset,
                    deliveries: lease.deliveries,
                })
                .collect();
            let lease = Duration::from_millis(change.lease_ms.into());
            broker
                .change_leases(who, &change.station, &change.consumer, leases, lease)
                .await
                .map(|outcome| {
                    Reply::LeasesChanged(wire::LeasesChanged {
                        changed: outcome.changed,
                        lost: outcome.lost,
                    })
                })
        }
        Op::DeleteConsumer(delete) => broker
            .delete_consumer(who, &delete.station, &delete.consumer)
            .await
            .map(|()| Reply::Done(wire::Done {})),
        other => return Err(other),
    };
    Ok(answer)
}

fn consumer_info(summary: ConsumerSummary) -> wire::ConsumerInfo {
    wire::ConsumerInfo {
        station: summary.station,
        consumer: summary.consumer,
        next_offset: summary.next_offset,
        lag: summary.lag,
        updated_at_ms: summary.updated_at_ms,
        updated_by: summary.updated_by,
        leased: summary.work.leased,
        acknowledged_ahead: summary.work.acknowledged_ahead,
        redeliveries: summary.work.redeliveries,
        dead_lettered: summary.work.dead_lettered,
    }
}
