//! Schema changes and attachments, handled by the registry actor so that
//! "delete a schema only if no station uses it" and "attach a schema only if
//! it exists" cannot interleave. Compiling happens before, in the caller:
//! these handlers only check, store and commit.

use std::sync::Arc;

use actix::prelude::*;

use depot_schemas::storage::{SchemaAttachment, SchemaFile, SchemaRecord, SchemaVersionRecord};

use crate::{
    clock::now_ms,
    error::{BrokerError, BrokerResult},
    registry::{StationDirectory, StationRegistry},
    schema::{
        Attachment, CompiledVersion, SchemaType, SchemaVersionSource, Validator,
        catalog::storage_type,
    },
    station::StationName,
};

/// A new schema, made of its first version (already compiled).
#[derive(Message)]
#[rtype(result = "BrokerResult<SchemaRecord>")]
pub struct CreateSchema {
    pub name: String,
    pub kind: SchemaType,
    pub source: SchemaVersionSource,
    pub validator: Validator,
    pub created_by: String,
}

/// A new version of an existing schema, which becomes the active one.
#[derive(Message)]
#[rtype(result = "BrokerResult<SchemaRecord>")]
pub struct AddSchemaVersion {
    pub name: String,
    /// The type the version was compiled as; must still be the schema's.
    pub kind: SchemaType,
    pub source: SchemaVersionSource,
    pub validator: Validator,
    pub created_by: String,
}

/// Makes an earlier (or later) version the active one.
#[derive(Message)]
#[rtype(result = "BrokerResult<SchemaRecord>")]
pub struct RollbackSchema {
    pub name: String,
    pub version: u32,
}

#[derive(Message)]
#[rtype(result = "BrokerResult<()>")]
pub struct DeleteSchema {
    pub name: String,
}

/// Attaches a schema to a station (`None` detaches).
#[derive(Message)]
#[rtype(result = "BrokerResult<()>")]
pub struct AttachSchema {
    pub station: StationName,
    pub attachment: Option<Attachment>,
}

impl StationDirectory {
    /// The stations whose attachment names `schema`, sorted.
    pub fn stations_using(&self, schema: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|s| s.schema.read().as_ref().is_some_and(|a| a.schema == schema))
            .map(|s| s.name.to_string())
            .collect()
    }
}

impl StationRegistry {
    /// Stores a schema record and answers once it is durable.
    fn commit_schema(
        &self,
        stored: BrokerResult<SchemaRecord>,
    ) -> ResponseFuture<BrokerResult<SchemaRecord>> {
        let commit = self.group_commit.commit_metadata();
        Box::pin(async move {
            let record = stored?;
            commit.await?;
            Ok(record)
        })
    }

    fn schema_record(&self, name: &str) -> BrokerResult<SchemaRecord> {
        self.schemas
            .record(name)
            .ok_or_else(|| BrokerError::SchemaNotFound {
                name: name.to_owned(),
            })
    }
}

fn version_record(
    version: u32,
    source: SchemaVersionSource,
    created_by: String,
) -> SchemaVersionRecord {
    SchemaVersionRecord {
        version,
        files: source
            .files
            .into_iter()
            .map(|(name, content)| SchemaFile { name, content })
            .collect(),
        message_type: source.message_type,
        created_at_ms: now_ms(),
        created_by,
    }
}

impl Handler<CreateSchema> for StationRegistry {
    type Result = ResponseFuture<BrokerResult<SchemaRecord>>;

    fn handle(&mut self, create: CreateSchema, _: &mut Self::Context) -> Self::Result {
        let stored = if self.schemas.record(&create.name).is_some() {
            Err(BrokerError::SchemaExists { name: create.name })
        } else {
            let mut record = SchemaRecord {
                name: create.name.clone(),
                r#type: storage_type(create.kind) as i32,
                versions: vec![version_record(1, create.source, create.created_by)],
                active_version: 1,
                created_at_ms: now_ms(),
            };
            record.created_at_ms = record.versions[0].created_at_ms;
            let compiled = Arc::new(CompiledVersion {
                schema: create.name,
                version: 1,
                validator: create.validator,
            });
            self.schemas
                .put(record.clone(), Some(compiled))
                .map(|()| record)
        };
        self.commit_schema(stored)
    }
}

impl Handler<AddSchemaVersion> for StationRegistry {
    type Result = ResponseFuture<BrokerResult<SchemaRecord>>;

    fn handle(&mut self, add: AddSchemaVersion, _: &mut Self::Context) -> Self::Result {
        let stored = self.schema_record(&add.name).and_then(|mut record| {
            if record.r#type != storage_type(add.kind) as i32 {
                return Err(BrokerError::bad_request(format!(
                    "schema {} changed type while the new version compiled; retry",
                    add.name
                )));
            }
            let version = record.versions.len() as u32 + 1;
            record
                .versions
                .push(version_record(version, add.source, add.created_by));
            record.active_version = version;
            let compiled = Arc::new(CompiledVersion {
                schema: add.name,
                version,
                validator: add.validator,
            });
            self.schemas.put(record.clone(), Some(compiled))?;
            Ok(record)
        });
        self.commit_schema(stored)
    }
}

impl Handler<RollbackSchema> for StationRegistry {
    type Result = ResponseFuture<BrokerResult<SchemaRecord>>;

    fn handle(&mut self, rollback: RollbackSchema, _: &mut Self::Context) -> Self::Result {
        let stored = self.schema_record(&rollback.name).and_then(|mut record| {
            let exists = (1..=record.versions.len() as u32).contains(&rollback.version);
            if !exists {
                return Err(BrokerError::SchemaVersionNotFound {
                    name: rollback.name,
                    version: rollback.version,
                });
            }
            record.active_version = rollback.version;
            self.schemas.put(record.clone(), None)?;
            Ok(record)
        });
        self.commit_schema(stored)
    }
}

impl Handler<DeleteSchema> for StationRegistry {
    type Result = ResponseFuture<BrokerResult<()>>;

    fn handle(&mut self, delete: DeleteSchema, _: &mut Self::Context) -> Self::Result {
        let removed = self.schema_record(&delete.name).and_then(|_| {
            let stations = self.directory.stations_using(&delete.name);
            if !stations.is_empty() {
                return Err(BrokerError::SchemaInUse {
                    name: delete.name.clone(),
                    stations,
                });
            }
            self.schemas.remove(&delete.name)
        });
        let commit = self.group_commit.commit_metadata();
        Box::pin(async move {
            removed?;
            commit.await
        })
    }
}

impl Handler<AttachSchema> for StationRegistry {
    type Result = ResponseFuture<BrokerResult<()>>;

    fn handle(&mut self, attach: AttachSchema, _: &mut Self::Context) -> Self::Result {
        let attached = self.attach(attach);
        let commit = self.group_commit.commit_metadata();
        Box::pin(async move {
            attached?;
            commit.await
        })
    }
}

impl StationRegistry {
    fn attach(&mut self, attach: AttachSchema) -> BrokerResult<()> {
        let not_found = || BrokerError::StationNotFound {
            name: attach.station.to_string(),
        };
        let station = self.directory.get(&attach.station).ok_or_else(not_found)?;
        if let Some(attachment) = &attach.attachment {
            let record = self.schema_record(&attachment.schema)?;
            if let Some(version) = attachment.version
                && !(1..=record.versions.len() as u32).contains(&version)
            {
                return Err(BrokerError::SchemaVersionNotFound {
                    name: attachment.schema.clone(),
                    version,
                });
            }
        }
        let mut definition = self
            .store
            .station_definition(&attach.station)?
            .ok_or_else(not_found)?;
        definition.schema = attach.attachment.as_ref().map(|a| SchemaAttachment {
            schema: a.schema.clone(),
            version: a.version.unwrap_or(0),
        });
        self.store.put_station_definition(&definition)?;
        *station.schema.write() = attach.attachment;
        Ok(())
    }
}
