//! [`Broker`]: the domain core every edge calls (the wire server today, the
//! embedded HTTP proxy later). Each operation checks the caller's rights,
//! then goes to the station's actor (writes) or straight to its log (reads).
//! Edges parse and map results; they never touch sled or actors themselves.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::{
    auth::{self, PasswordHasher, Principal},
    config::BrokerConfig,
    error::{BrokerError, BrokerResult},
    persist::{GroupCommit, Store},
    registry::{CreateStation, DeleteStation, StationDirectory, StationRegistry, UpdateStation},
    station::{
        NewMessage, ProduceOutcome, ReadBatch, ReadLimits, SettingsChange, StationHandle,
        StationName, StationSettings,
        actor::{Describe, Produce, StationStats},
    },
};

/// Threads that run station actors; stations are spread across them.
const STATION_THREADS: usize = 2;

/// A running broker core; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    config: BrokerConfig,
    store: Store,
    group_commit: GroupCommit,
    registry: Addr<StationRegistry>,
    directory: StationDirectory,
    station_arbiters: Vec<Arbiter>,
    passwords: PasswordHasher,
}

/// What [`Broker::open`] learned on the way.
pub struct Opened {
    pub broker: Broker,
    /// `root`'s password when it was generated on this (first) start; show it
    /// once.
    pub generated_root_password: Option<String>,
}

impl Broker {
    /// Opens the data directory, recovers every station and starts their
    /// actors. Must run inside an actix system.
    pub fn open(config: BrokerConfig) -> BrokerResult<Opened> {
        let store = Store::open(&config)?;
        let passwords = PasswordHasher::start();
        let generated_root_password =
            auth::ensure_root(&store, &passwords, config.root_password.as_deref())?;
        let group_commit = GroupCommit::start(store.db().clone(), config.fsync);
        let station_arbiters: Vec<Arbiter> = (0..STATION_THREADS).map(|_| Arbiter::new()).collect();
        let (registry, directory) = StationRegistry::recover(
            store.clone(),
            group_commit.clone(),
            config.retention_interval,
            station_arbiters.iter().map(Arbiter::handle).collect(),
        )?;
        let registry = registry.start();
        let broker = Broker {
            inner: Arc::new(Inner {
                config,
                store,
                group_commit,
                registry,
                directory,
                station_arbiters,
                passwords,
            }),
        };
        Ok(Opened {
            broker,
            generated_root_password,
        })
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Checks credentials on the password thread (argon2 is slow on purpose).
    pub async fn authenticate(
        &self,
        username: String,
        password: String,
    ) -> BrokerResult<Principal> {
        auth::authenticate(
            &self.inner.store,
            &self.inner.passwords,
            &username,
            &password,
        )
        .await
    }

    pub async fn create_station(
        &self,
        who: &Principal,
        name: &str,
        settings: StationSettings,
    ) -> BrokerResult<StationStats> {
        who.require_admin()?;
        let name = StationName::parse(name)?;
        let station = self
            .registry(CreateStation {
                name,
                settings,
                if_absent: false,
            })
            .await??;
        describe(&station).await
    }

    pub async fn update_station(
        &self,
        who: &Principal,
        name: &str,
        change: SettingsChange,
    ) -> BrokerResult<StationStats> {
        who.require_admin()?;
        let name = StationName::parse(name)?;
        self.registry(UpdateStation {
            name: name.clone(),
            change,
        })
        .await??;
        describe(&self.station(&name)?).await
    }

    pub async fn delete_station(&self, who: &Principal, name: &str) -> BrokerResult<()> {
        who.require_admin()?;
        let name = StationName::parse(name)?;
        self.registry(DeleteStation { name }).await?
    }

    pub async fn list_stations(&self, _who: &Principal) -> BrokerResult<Vec<StationStats>> {
        let mut stats = Vec::new();
        for station in self.inner.directory.all() {
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
        _who: &Principal,
        name: &str,
    ) -> BrokerResult<StationStats> {
        let name = StationName::parse(name)?;
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
        let station = match self.inner.directory.get(&name) {
            Some(station) => station,
            None if self.inner.config.auto_create && who.may_create_stations => {
                self.registry(CreateStation {
                    name,
                    settings: StationSettings::default(),
                    if_absent: true,
                })
                .await??
            }
            None => return Err(not_found(&name)),
        };
        let (reply, outcomes) = oneshot::channel();
        station.actor.do_send(Produce {
            messages,
            producer: who.username.clone(),
            reply,
        });
        // A dropped reply means the actor stopped: the station was deleted.
        Ok(async move {
            outcomes
                .await
                .unwrap_or_else(|_| Err(not_found(&station.name)))
        })
    }

    /// Reads durable messages from `from` on.
    pub fn fetch(
        &self,
        _who: &Principal,
        station: &str,
        from: u64,
        limits: ReadLimits,
    ) -> BrokerResult<(ReadBatch, u64)> {
        let station = self.station(&StationName::parse(station)?)?;
        let head = *station.durable_head.borrow();
        Ok((station.log.read(from, head, limits)?, head))
    }

    /// The station itself, for readers that follow it (subscriptions).
    pub fn station_for_reading(
        &self,
        _who: &Principal,
        station: &str,
    ) -> BrokerResult<StationHandle> {
        self.station(&StationName::parse(station)?)
    }

    /// Flushes and stops the flushing thread; the process may exit after.
    pub fn shutdown(&self) {
        self.inner.group_commit.shutdown();
        for arbiter in &self.inner.station_arbiters {
            arbiter.stop();
        }
    }

    fn station(&self, name: &StationName) -> BrokerResult<StationHandle> {
        self.inner
            .directory
            .get(name)
            .ok_or_else(|| not_found(name))
    }

    async fn registry<M>(&self, message: M) -> BrokerResult<M::Result>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        StationRegistry: Handler<M>,
    {
        self.inner
            .registry
            .send(message)
            .await
            .map_err(|_| BrokerError::ShuttingDown)
    }
}

async fn describe(station: &StationHandle) -> BrokerResult<StationStats> {
    station
        .actor
        .send(Describe)
        .await
        .map_err(|_| not_found(&station.name))
}

fn not_found(name: &StationName) -> BrokerError {
    BrokerError::StationNotFound {
        name: name.to_string(),
    }
}
