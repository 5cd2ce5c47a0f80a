//! Station operations of the core: lifecycle, produce, fetch. Station
//! management needs the admin right; produce and fetch need the caller's
//! produce or consume pattern to match the station.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::{
    auth::Principal,
    broker::Broker,
    broker::audit::AUDIT_STATION,
    broker::validation::Validated,
    delivery::relay::RESERVED_PREFIX,
    error::{BrokerError, BrokerResult},
    registry::{CreateStation, DeleteStation, UpdateStation},
    station::{
        NewMessage, ProduceOutcome, ReadBatch, ReadLimits, SettingsChange, StationHandle,
        StationMeta, StationName, StationSettings,
        actor::{Describe, Produce, Purge, Purged, StationStats},
    },
};

/// Where a fetch starts.
#[derive(Debug, Clone, Copy)]
pub enum FetchFrom<'a> {
    Offset(u64),
    /// At this consumer's position (the station's oldest message when it
    /// has none yet).
    Consumer(&'a str),
}

impl Broker {
    pub async fn create_station(
        &self,
        who: &Principal,
        name: &str,
        settings: StationSettings,
        description: String,
    ) -> BrokerResult<StationStats> {
        who.require_create_stations()?;
        let name = StationName::parse(name)?;
        refuse_reserved(&name, "created")?;
        self.check_deliverable(settings.max_message_bytes)?;
        StationMeta::check_description(&description)?;
        let station = self
            .registry(CreateStation {
                name,
                settings,
                description,
                if_absent: false,
            })
            .await??
            .station;
        self.set_notifications(&station, settings.notify_connections);
        describe(&station).await
    }

    pub async fn update_station(
        &self,
        who: &Principal,
        name: &str,
        change: SettingsChange,
        description: Option<String>,
    ) -> BrokerResult<StationStats> {
        who.require_admin()?;
        let name = StationName::parse(name)?;
        if let Some(max_message_bytes) = change.max_message_bytes {
            self.check_deliverable(max_message_bytes)?;
        }
        if let Some(description) = &description {
            StationMeta::check_description(description)?;
        }
        self.registry(UpdateStation {
            name: name.clone(),
            change,
            description,
        })
        .await??;
        let station = self.station(&name)?;
        let stats = describe(&station).await?;
        self.set_notifications(&station, stats.settings.notify_connections);
        Ok(stats)
    }

    /// Refuses a station's max message size that no wire frame could
    /// deliver (fetch, subscriptions, remote proxies all read through one).
    fn check_deliverable(&self, max_message_bytes: u64) -> BrokerResult<()> {
        let options = &self.inner.config.options;
        let largest = options.largest_deliverable_message();
        if max_message_bytes > largest {
            return Err(BrokerError::bad_request(format!(
                "a max message size of {max_message_bytes} bytes cannot be delivered: one wire frame (--max-frame {} bytes) carries at most {largest}; raise --max-frame first",
                options.max_frame_bytes
            )));
        }
        Ok(())
    }

    pub async fn delete_station(&self, who: &Principal, name: &str) -> BrokerResult<()> {
        who.require_admin()?;
        let name = StationName::parse(name)?;
        refuse_reserved(&name, "deleted")?;
        self.registry(DeleteStation { name }).await?
    }

    /// Removes the station's messages below `before` (`None`: every one
    /// stored now), keeping the station, its settings, offsets, consumers
    /// and subscriptions ([`crate::station::actor::Purge`]); durable before
    /// it returns.
    pub async fn purge_station(
        &self,
        who: &Principal,
        name: &str,
        before: Option<u64>,
    ) -> BrokerResult<Purged> {
        who.require_admin()?;
        let name = StationName::parse(name)?;
        refuse_reserved(&name, "purged")?;
        let station = self.station(&name)?;
        ask(&station, |reply| Purge { before, reply }).await
    }

    /// The stations the caller may produce to or consume from (all, for an
    /// administrator).
    pub async fn list_stations(&self, who: &Principal) -> BrokerResult<Vec<StationStats>> {
        let mut stats = Vec::new();
        let visible = |station: &StationHandle| {
            who.require_produce(&station.name).is_ok() || who.require_consume(&station.name).is_ok()
        };
        for station in self.inner.directory.all().into_iter().filter(visible) {
            match describe(&station).await {
                Ok(s) => stats.push(s),
                // Deleted while we listed: leave it out.
                Err(BrokerError::StationNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(stats)
    }

    pub async fn describe_station(
        &self,
        who: &Principal,
        name: &str,
    ) -> BrokerResult<StationStats> {
        let name = StationName::parse(name)?;
        who.require_produce(&name)
            .or_else(|_| who.require_consume(&name))?;
        describe(&self.station(&name)?).await
    }

    /// Appends messages; answers once they are durable (per the fsync
    /// policy), with one outcome per message in order.
    pub async fn produce(
        &self,
        who: &Principal,
        station: &str,
        messages: Vec<NewMessage>,
    ) -> BrokerResult<Vec<ProduceOutcome>> {
        self.start_produce(who, station, messages).await?.await
    }

    /// Hands messages to the station's actor and returns the wait for their
    /// outcomes. Produces started one after another (from one connection, say)
    /// are stored in that order, even if their answers are awaited
    /// concurrently: the caller bounds how many it leaves in flight.
    pub async fn start_produce(
        &self,
        who: &Principal,
        station: &str,
        messages: Vec<NewMessage>,
    ) -> BrokerResult<impl Future<Output = BrokerResult<Vec<ProduceOutcome>>> + use<>> {
        let name = StationName::parse(station)?;
        who.require_produce(&name)?;
        if name.as_str() == AUDIT_STATION {
            return Err(BrokerError::PermissionDenied {
                reason: format!("{AUDIT_STATION} is written by the broker alone"),
            });
        }
        let station = match self.inner.directory.get(&name) {
            Some(station) => station,
            None if self.inner.config.options.auto_create
                && who.may_create_stations()
                && !name.as_str().starts_with(RESERVED_PREFIX) =>
            {
                let created = self
                    .registry(CreateStation {
                        name,
                        settings: StationSettings::default(),
                        description: String::new(),
                        if_absent: true,
                    })
                    .await??;
                if created.new {
                    self.audit_auto_create(who, &created.station).await;
                }
                created.station
            }
            None => return Err(not_found(&name)),
        };
        let attachment = station.schema.read().clone();
        let mut validated = match attachment {
            None => Validated::unchecked(messages),
            Some(attachment) => {
                let schema = self.inner.schemas.compiled(&attachment)?;
                Validated::check(&station, &schema, &who.username, messages)?
            }
        };
        // Refused messages went to the dead letters: durable before answering.
        let dead_letters_durable = validated
            .dead_lettered
            .then(|| self.inner.group_commit.commit());
        let valid = std::mem::take(&mut validated.valid);
        let appended = (!valid.is_empty()).then(|| append(&station, who.username.clone(), valid));
        Ok(async move {
            let appended = match appended {
                Some(outcomes) => outcomes.await?,
                None => Vec::new(),
            };
            if let Some(durable) = dead_letters_durable {
                durable.await?;
            }
            Ok(validated.merge(appended))
        })
    }

    /// Reads durable messages from `from` on; when nothing is stored there yet, first waits up
    /// to `wait` (cut to `--max-fetch-wait`) for a message to land there,
    /// woken by the station's durable head (a long poll: an HTTP consumer
    /// learns of a message as soon as it is durable, without polling).
    pub async fn fetch(
        &self,
        who: &Principal,
        station: &str,
        from: FetchFrom<'_>,
        limits: ReadLimits,
        wait: Duration,
    ) -> BrokerResult<(ReadBatch, u64)> {
        let name = StationName::parse(station)?;
        who.require_consume(&name)?;
        let station = self.station(&name)?;
        let from = match from {
            FetchFrom::Offset(offset) => offset,
            FetchFrom::Consumer(consumer) => self.consumer_start(&station, consumer)?,
        };
        let wait = wait.min(self.inner.config.options.max_fetch_wait);
        if !wait.is_zero() {
            let mut head = station.durable_head.clone();
            let landed = tokio::time::timeout(wait, head.wait_for(|&head| head > from)).await;
            if let Ok(Err(_)) = landed {
                // The station was deleted while we waited.
                return Err(not_found(&name));
            }
        }
        station.read(from, limits)
    }

    /// The station itself, for readers that follow it (subscriptions).
    pub fn station_for_reading(
        &self,
        who: &Principal,
        station: &str,
    ) -> BrokerResult<StationHandle> {
        let name = StationName::parse(station)?;
        who.require_consume(&name)?;
        self.station(&name)
    }

    pub(super) fn station(&self, name: &StationName) -> BrokerResult<StationHandle> {
        self.inner
            .directory
            .get(name)
            .ok_or_else(|| not_found(name))
    }
}

/// Hands messages to the station's actor; resolves with their outcomes once
/// they are durable.
pub(super) fn append(
    station: &StationHandle,
    producer: String,
    messages: Vec<NewMessage>,
) -> impl Future<Output = BrokerResult<Vec<ProduceOutcome>>> + use<> {
    let (reply, outcomes) = oneshot::channel();
    station.actor.do_send(Produce {
        messages,
        producer,
        reply,
    });
    let name = station.name.clone();
    // A dropped reply means the actor stopped: the station was deleted.
    async move { outcomes.await.unwrap_or_else(|_| Err(not_found(&name))) }
}

/// Sends `station`'s actor the message `message` builds around a reply
/// and waits for the answer; a dropped reply means the actor stopped (the
/// station was deleted).
pub(super) async fn ask<M, T>(
    station: &StationHandle,
    message: impl FnOnce(oneshot::Sender<BrokerResult<T>>) -> M,
) -> BrokerResult<T>
where
    M: actix::Message<Result = ()> + Send + 'static,
    crate::station::StationActor: actix::Handler<M>,
{
    let (reply, answer) = oneshot::channel();
    station.actor.do_send(message(reply));
    answer
        .await
        .unwrap_or_else(|_| Err(not_found(&station.name)))
}

pub(super) async fn describe(station: &StationHandle) -> BrokerResult<StationStats> {
    let mut stats = station
        .actor
        .send(Describe)
        .await
        .map_err(|_| not_found(&station.name))?;
    stats.schema = station.schema.read().clone();
    stats.meta = station.meta.read().clone();
    Ok(stats)
}

pub(super) fn not_found(name: &StationName) -> BrokerError {
    BrokerError::StationNotFound {
        name: name.to_string(),
    }
}

/// Stations named `depot.*` are Depot's own (the relay's): made and kept by
/// the broker, never by hand.
fn refuse_reserved(name: &StationName, what: &str) -> BrokerResult<()> {
    if name.as_str().starts_with(RESERVED_PREFIX) {
        return Err(BrokerError::PermissionDenied {
            reason: format!(
                "stations named {RESERVED_PREFIX}* are Depot's own and cannot be {what}"
            ),
        });
    }
    Ok(())
}
