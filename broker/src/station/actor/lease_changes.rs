//! Changing when leases end: a worker still busy with a message extends
//! its lease, one that cannot handle a message gives it back now (a lease
//! of zero) or after a delay. A worker changes only its own leases: a
//! message handed out again since (its deliveries moved on) or acknowledged
//! is reported lost to it.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::StationActor;
use crate::{error::BrokerResult, station::ConsumerName};

/// Makes leases of `consumer`'s messages end `lease` from now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ChangeLeases {
    pub consumer: ConsumerName,
    pub leases: Vec<LeaseRef>,
    pub lease: Duration,
    pub reply: oneshot::Sender<BrokerResult<LeasesChanged>>,
}

/// One lease a worker holds: the message's offset and the `deliveries` its
/// fetch gave it (0: whichever lease holds the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRef {
    pub offset: u64,
    pub deliveries: u32,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct LeasesChanged {
    pub changed: Vec<u64>,
    /// Not (any more) leased with those deliveries.
    pub lost: Vec<u64>,
}

impl StationActor {
    fn change_leases(&mut self, request: &ChangeLeases) -> BrokerResult<LeasesChanged> {
        if self.deleted {
            return Err(self.not_found());
        }
        let ends = Instant::now() + request.lease;
        let mut outcome = LeasesChanged::default();
        let group = self.groups.get_mut(request.consumer.as_str());
        let mut leases = group.map(|group| &mut group.leases);
        for wanted in &request.leases {
            let held = leases
                .as_mut()
                .and_then(|leases| leases.get_mut(&wanted.offset))
                .filter(|lease| wanted.deliveries == 0 || lease.deliveries == wanted.deliveries);
            match held {
                Some(lease) => {
                    lease.ends = ends;
                    outcome.changed.push(wanted.offset);
                }
                None => outcome.lost.push(wanted.offset),
            }
        }
        if !outcome.changed.is_empty() {
            // A lease may end sooner now: workers waiting look again.
            self.lease_changes.send_modify(|changes| *changes += 1);
        }
        Ok(outcome)
    }
}

impl Handler<ChangeLeases> for StationActor {
    type Result = ();

    fn handle(&mut self, request: ChangeLeases, _: &mut Self::Context) {
        let changed = self.change_leases(&request);
        let _ = request.reply.send(changed);
    }
}
