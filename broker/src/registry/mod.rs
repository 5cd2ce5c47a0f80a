//! The station registry: creates, finds and deletes stations.
//!
//! Two parts, each for its own kind of traffic:
//! - [`StationRegistry`], an actor, serialises every change to the set of
//!   stations (create, update, delete), so two creates of one name can never
//!   race, and a delete finishes (actor stopped, tree dropped) before the
//!   next change starts.
//! - [`StationDirectory`], a read-mostly map shared by every connection
//!   thread, answers "which actor owns station X" on the produce and fetch
//!   paths without a message round trip through the registry.
//!
//! Station actors are spread over the broker's worker threads (the ones
//! that also serve wire connections), so stations append in parallel while
//! each stays single-writer.
//!
//! Schema changes go through the registry too ([`schemas`]): a schema cannot
//! be deleted while a station attaches it, and that check and the attach
//! must not interleave.

mod schemas;

pub use schemas::{AddSchemaVersion, AttachSchema, CreateSchema, DeleteSchema, RollbackSchema};

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use parking_lot::RwLock;

use depot_schemas::storage::StationDefinition;

use crate::{
    clock::now_ms,
    delivery::relay::RESERVED_PREFIX,
    error::{BrokerError, BrokerResult},
    persist::{GroupCommit, Store},
    refusals::{Limit, Refusals},
    schema::{Attachment, SchemaCatalog},
    station::{
        DeadLetters, SettingsChange, StationActor, StationHandle, StationLog, StationMeta,
        StationName, StationSettings,
        actor::{Shutdown, UpdateSettings},
    },
};

/// Where lookups go: name -> handle. Cheap to clone.
#[derive(Clone, Default)]
pub struct StationDirectory {
    stations: Arc<RwLock<HashMap<StationName, StationHandle>>>,
}

impl StationDirectory {
    pub fn get(&self, name: &StationName) -> Option<StationHandle> {
        self.stations.read().get(name).cloned()
    }

    /// Every station, sorted by name.
    pub fn all(&self) -> Vec<StationHandle> {
        let mut all: Vec<_> = self.stations.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// Creates a station; with `if_absent`, an existing one is returned instead
/// of `StationExists` (the auto-create path).
#[derive(Message)]
#[rtype(result = "BrokerResult<Created>")]
pub struct CreateStation {
    pub name: StationName,
    pub settings: StationSettings,
    pub description: String,
    pub if_absent: bool,
}

/// What [`CreateStation`] gives back.
pub struct Created {
    pub station: StationHandle,
    /// False when `if_absent` found it there already.
    pub new: bool,
}

/// Changes a station's settings (persisted before the actor applies them)
/// and, when given, its description.
#[derive(Message)]
#[rtype(result = "BrokerResult<StationSettings>")]
pub struct UpdateStation {
    pub name: StationName,
    pub change: SettingsChange,
    pub description: Option<String>,
}

/// Deletes a station and every message in it.
#[derive(Message)]
#[rtype(result = "BrokerResult<()>")]
pub struct DeleteStation {
    pub name: StationName,
}

pub struct StationRegistry {
    store: Store,
    schemas: Arc<SchemaCatalog>,
    group_commit: GroupCommit,
    retention_interval: Duration,
    /// Stations held at most (Depot's own `depot.*` stations aside).
    max_stations: usize,
    /// Counts the stations `max_stations` refused.
    refusals: Refusals,
    directory: StationDirectory,
    /// Threads the station actors run on, used round-robin.
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
}

impl StationRegistry {
    /// Whether creating `name` would pass `max_stations`. Depot's own
    /// `depot.*` stations neither count nor are refused (the relay needs
    /// its own). Counted on each creation, which is rare.
    fn is_full(&self, name: &StationName) -> bool {
        let reserved = |name: &StationName| name.as_str().starts_with(RESERVED_PREFIX);
        !reserved(name)
            && self
                .directory
                .stations
                .read()
                .keys()
                .filter(|name| !reserved(name))
                .count()
                >= self.max_stations
    }

    /// Starts an actor for every station on disk.
    pub fn recover(
        store: Store,
        schemas: Arc<SchemaCatalog>,
        group_commit: GroupCommit,
        retention_interval: Duration,
        max_stations: usize,
        refusals: Refusals,
        arbiters: Vec<ArbiterHandle>,
    ) -> BrokerResult<(Self, StationDirectory)> {
        store.drop_orphan_station_trees()?;
        let mut registry = Self {
            store,
            schemas,
            group_commit,
            retention_interval,
            max_stations,
            refusals,
            directory: StationDirectory::default(),
            arbiters,
            next_arbiter: 0,
        };
        for definition in registry.store.station_definitions()? {
            let name = StationName::parse(&definition.name)?;
            let settings = definition
                .settings
                .as_ref()
                .map(StationSettings::from_storage)
                .unwrap_or_default();
            let attachment = definition.schema.as_ref().map(|a| Attachment {
                schema: a.schema.clone(),
                version: (a.version != 0).then_some(a.version),
            });
            let meta = StationMeta {
                description: definition.description.clone(),
                updated_at_ms: match definition.updated_at_ms {
                    0 => definition.created_at_ms,
                    updated => updated,
                },
            };
            registry.start_station(name, definition.created_at_ms, settings, meta, attachment)?;
        }
        let directory = registry.directory.clone();
        Ok((registry, directory))
    }

    fn start_station(
        &mut self,
        name: StationName,
        created_at_ms: u64,
        settings: StationSettings,
        meta: StationMeta,
        schema: Option<Attachment>,
    ) -> BrokerResult<StationHandle> {
        let log = StationLog::new(self.store.open_station_tree(&name)?);
        let dead_letters = DeadLetters::new(
            self.store.db().clone(),
            self.store.open_dead_letter_tree(&name)?,
            settings.keep_dead_letters,
        );
        let (actor, durable_head) = StationActor::recover(
            name.clone(),
            created_at_ms,
            settings,
            log.clone(),
            dead_letters.clone(),
            self.group_commit.clone(),
            self.retention_interval,
        )?;
        let work_queues = actor.work_queues();
        let arbiter = &self.arbiters[self.next_arbiter % self.arbiters.len()];
        self.next_arbiter += 1;
        let actor = StationActor::start_in_arbiter(arbiter, move |_| actor);
        let handle = StationHandle {
            name: name.clone(),
            actor,
            log,
            durable_head,
            schema: Arc::new(RwLock::new(schema)),
            meta: Arc::new(RwLock::new(meta)),
            dead_letters,
            work_queues,
        };
        self.directory.stations.write().insert(name, handle.clone());
        Ok(handle)
    }

    fn definition(
        name: &StationName,
        created_at_ms: u64,
        settings: StationSettings,
        description: String,
    ) -> StationDefinition {
        StationDefinition {
            name: name.to_string(),
            settings: Some(settings.to_storage()),
            created_at_ms,
            schema: None,
            description,
            updated_at_ms: created_at_ms,
        }
    }
}

impl Actor for StationRegistry {
    type Context = Context<Self>;
}

impl Handler<CreateStation> for StationRegistry {
    type Result = ResponseFuture<BrokerResult<Created>>;

    fn handle(&mut self, create: CreateStation, _: &mut Self::Context) -> Self::Result {
        let created = match self.directory.get(&create.name) {
            Some(existing) if create.if_absent => Ok(Created {
                station: existing,
                new: false,
            }),
            Some(_) => Err(BrokerError::StationExists {
                name: create.name.to_string(),
            }),
            None if self.is_full(&create.name) => {
                self.refusals.count(Limit::MaxStations);
                Err(BrokerError::LimitReached {
                    reason: format!(
                        "the broker holds {} stations, its limit (--max-stations); delete some or raise it",
                        self.max_stations
                    ),
                })
            }
            None => {
                let created_at_ms = now_ms();
                let meta = StationMeta {
                    description: create.description.clone(),
                    updated_at_ms: created_at_ms,
                };
                let definition = Self::definition(
                    &create.name,
                    created_at_ms,
                    create.settings,
                    create.description,
                );
                self.store
                    .put_station_definition(&definition)
                    .and_then(|()| {
                        self.start_station(create.name, created_at_ms, create.settings, meta, None)
                    })
                    .map(|station| Created { station, new: true })
            }
        };
        let commit = self.group_commit.commit_metadata();
        Box::pin(async move {
            let handle = created?;
            commit.await?;
            Ok(handle)
        })
    }
}

impl Handler<UpdateStation> for StationRegistry {
    type Result = AtomicResponse<Self, BrokerResult<StationSettings>>;

    fn handle(&mut self, update: UpdateStation, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let commit = self.group_commit.clone();
        let station = self.directory.get(&update.name);
        let not_found = move || BrokerError::StationNotFound {
            name: update.name.to_string(),
        };
        AtomicResponse::new(Box::pin(
            async move {
                let station = station.ok_or_else(not_found.clone())?;
                let mut definition = store
                    .station_definition(&station.name)?
                    .ok_or_else(not_found.clone())?;
                let settings = station
                    .actor
                    .send(UpdateSettings(update.change))
                    .await
                    .map_err(|_| not_found())?;
                definition.settings = Some(settings.to_storage());
                if let Some(description) = update.description {
                    definition.description = description;
                }
                definition.updated_at_ms = now_ms();
                store.put_station_definition(&definition)?;
                commit.commit_metadata().await?;
                *station.meta.write() = StationMeta {
                    description: definition.description,
                    updated_at_ms: definition.updated_at_ms,
                };
                Ok(settings)
            }
            .into_actor(self),
        ))
    }
}

impl Handler<DeleteStation> for StationRegistry {
    type Result = AtomicResponse<Self, BrokerResult<()>>;

    fn handle(&mut self, delete: DeleteStation, _: &mut Self::Context) -> Self::Result {
        let removed = self.directory.stations.write().remove(&delete.name);
        let store = self.store.clone();
        let commit = self.group_commit.clone();
        // Atomic: the registry handles nothing else until the station's actor
        // has stopped and its tree is gone, so a create of the same name
        // cannot interleave.
        AtomicResponse::new(Box::pin(
            async move {
                let station = removed.ok_or_else(|| BrokerError::StationNotFound {
                    name: delete.name.to_string(),
                })?;
                let _ = station.actor.send(Shutdown).await;
                store.remove_station_definition(&delete.name)?;
                store.drop_station_tree(&delete.name)?;
                commit.commit_metadata().await
            }
            .into_actor(self),
        ))
    }
}
