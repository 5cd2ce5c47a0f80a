//! Schema management and attachments; administrators only. Definitions are
//! compiled here, on a blocking thread, before anything is stored: a schema
//! that does not compile is refused with the compiler's message.

use depot_schemas::storage::SchemaRecord;

use crate::{
    auth::Principal,
    broker::Broker,
    error::{BrokerError, BrokerResult},
    registry::{AddSchemaVersion, AttachSchema, CreateSchema, DeleteSchema, RollbackSchema},
    schema::{Attachment, SchemaType, SchemaVersionSource, Validator, catalog::schema_type},
    station::{StationName, name::is_valid_name},
};

/// A schema and the stations that use it.
#[derive(Debug, Clone)]
pub struct SchemaSummary {
    pub record: SchemaRecord,
    pub stations: Vec<String>,
}

impl Broker {
    pub async fn create_schema(
        &self,
        who: &Principal,
        name: &str,
        kind: SchemaType,
        source: SchemaVersionSource,
    ) -> BrokerResult<SchemaSummary> {
        who.require_admin()?;
        if !is_valid_name(name) {
            return Err(BrokerError::InvalidSchemaName {
                name: name.to_owned(),
            });
        }
        let validator = compile(kind, source.clone()).await?;
        let record = self
            .registry(CreateSchema {
                name: name.to_owned(),
                kind,
                source,
                validator,
                created_by: who.username.clone(),
            })
            .await??;
        Ok(self.summary(record))
    }

    /// Adds a version and makes it active. For protobuf, an empty message
    /// type keeps the previous version's.
    pub async fn update_schema(
        &self,
        who: &Principal,
        name: &str,
        mut source: SchemaVersionSource,
    ) -> BrokerResult<SchemaSummary> {
        who.require_admin()?;
        let current = self.schema_record(name)?;
        let kind = schema_type(current.r#type())
            .map_err(|reason| BrokerError::InvalidSchema { reason })?;
        if kind == SchemaType::Protobuf && source.message_type.is_empty() {
            source.message_type = current
                .versions
                .last()
                .map(|v| v.message_type.clone())
                .unwrap_or_default();
        }
        let validator = compile(kind, source.clone()).await?;
        let record = self
            .registry(AddSchemaVersion {
                name: name.to_owned(),
                kind,
                source,
                validator,
                created_by: who.username.clone(),
            })
            .await??;
        Ok(self.summary(record))
    }

    pub async fn rollback_schema(
        &self,
        who: &Principal,
        name: &str,
        version: u32,
    ) -> BrokerResult<SchemaSummary> {
        who.require_admin()?;
        let record = self
            .registry(RollbackSchema {
                name: name.to_owned(),
                version,
            })
            .await??;
        Ok(self.summary(record))
    }

    pub async fn delete_schema(&self, who: &Principal, name: &str) -> BrokerResult<()> {
        who.require_admin()?;
        self.registry(DeleteSchema {
            name: name.to_owned(),
        })
        .await?
    }

    pub fn describe_schema(&self, who: &Principal, name: &str) -> BrokerResult<SchemaSummary> {
        who.require_admin()?;
        Ok(self.summary(self.schema_record(name)?))
    }

    pub fn list_schemas(&self, who: &Principal) -> BrokerResult<Vec<SchemaSummary>> {
        who.require_admin()?;
        Ok(self
            .inner
            .schemas
            .records()
            .into_iter()
            .map(|record| self.summary(record))
            .collect())
    }

    /// Attaches a schema to a station (`None` detaches); applies to the
    /// next message produced.
    pub async fn attach_schema(
        &self,
        who: &Principal,
        station: &str,
        attachment: Option<Attachment>,
    ) -> BrokerResult<()> {
        who.require_admin()?;
        let station = StationName::parse(station)?;
        self.registry(AttachSchema {
            station,
            attachment,
        })
        .await?
    }

    fn schema_record(&self, name: &str) -> BrokerResult<SchemaRecord> {
        self.inner
            .schemas
            .record(name)
            .ok_or_else(|| BrokerError::SchemaNotFound {
                name: name.to_owned(),
            })
    }

    fn summary(&self, record: SchemaRecord) -> SchemaSummary {
        let stations = self.inner.directory.stations_using(&record.name);
        SchemaSummary { record, stations }
    }
}

/// Compiling a protobuf schema can take milliseconds: not on a connection
/// thread.
async fn compile(kind: SchemaType, source: SchemaVersionSource) -> BrokerResult<Validator> {
    tokio::task::spawn_blocking(move || {
        Validator::compile(kind, &source.files, &source.message_type)
    })
    .await
    .map_err(|_| BrokerError::ShuttingDown)?
    .map_err(|reason| BrokerError::InvalidSchema { reason })
}
