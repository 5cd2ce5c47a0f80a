//! The schema catalogue: every schema with all its versions, in sled (tree
//! `schemas`) and in memory. Versions are compiled lazily, once, and shared
//! by every producer through an `Arc`.
//!
//! Reads (the produce path) take a read lock; changes come only from the
//! station registry actor, which serialises them with attachments.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use parking_lot::RwLock;

use depot_schemas::storage::{self, SchemaRecord};

use crate::{
    error::{BrokerError, BrokerResult},
    persist::Store,
    schema::{Attachment, CompiledVersion, SchemaType, Validator},
};

/// The sources of one version, as a client sends them.
#[derive(Debug, Clone, Default)]
pub struct SchemaVersionSource {
    /// (file name, content); exactly one file for JSON.
    pub files: Vec<(String, String)>,
    /// Protobuf only.
    pub message_type: String,
}

pub struct SchemaCatalog {
    store: Store,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

struct Entry {
    record: SchemaRecord,
    /// Index `version - 1`.
    compiled: Vec<OnceLock<Result<Arc<CompiledVersion>, String>>>,
}

impl SchemaCatalog {
    pub fn load(store: Store) -> BrokerResult<Self> {
        let entries = store
            .schema_records()?
            .into_iter()
            .map(|record| (record.name.clone(), Arc::new(Entry::new(record, None))))
            .collect();
        Ok(Self {
            store,
            entries: RwLock::new(entries),
        })
    }

    pub fn record(&self, name: &str) -> Option<SchemaRecord> {
        self.entries.read().get(name).map(|e| e.record.clone())
    }

    /// Every schema, sorted by name.
    pub fn records(&self) -> Vec<SchemaRecord> {
        let mut records: Vec<_> = self
            .entries
            .read()
            .values()
            .map(|e| e.record.clone())
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        records
    }

    /// The compiled version an attachment names right now.
    pub fn compiled(&self, attachment: &Attachment) -> BrokerResult<Arc<CompiledVersion>> {
        let entry = self
            .entries
            .read()
            .get(&attachment.schema)
            .cloned()
            .ok_or_else(|| BrokerError::SchemaNotFound {
                name: attachment.schema.clone(),
            })?;
        let version = attachment.version.unwrap_or(entry.record.active_version);
        entry.compiled(version)
    }

    /// Stores a new or changed schema, durably once the caller commits
    /// metadata. `newest` is the just-compiled last version, kept so it is
    /// not compiled twice.
    pub(crate) fn put(
        &self,
        record: SchemaRecord,
        newest: Option<Arc<CompiledVersion>>,
    ) -> BrokerResult<()> {
        self.store.put_schema(&record)?;
        let mut entries = self.entries.write();
        let entry = match entries.get(&record.name) {
            // Keep what was compiled for the versions that did not change.
            Some(old) => Entry::extend(old, record, newest),
            None => Entry::new(record, newest),
        };
        entries.insert(entry.record.name.clone(), Arc::new(entry));
        Ok(())
    }

    pub(crate) fn remove(&self, name: &str) -> BrokerResult<()> {
        self.store.remove_schema(name)?;
        self.entries.write().remove(name);
        Ok(())
    }
}

impl Entry {
    fn new(record: SchemaRecord, newest: Option<Arc<CompiledVersion>>) -> Self {
        let mut compiled: Vec<OnceLock<_>> =
            record.versions.iter().map(|_| OnceLock::new()).collect();
        if let (Some(newest), Some(last)) = (newest, compiled.last_mut()) {
            *last = OnceLock::from(Ok(newest));
        }
        Self { record, compiled }
    }

    fn extend(old: &Entry, record: SchemaRecord, newest: Option<Arc<CompiledVersion>>) -> Self {
        let mut entry = Self::new(record, newest);
        for (slot, previous) in entry.compiled.iter_mut().zip(&old.compiled) {
            if slot.get().is_none() {
                *slot = previous.clone();
            }
        }
        entry
    }

    fn compiled(&self, version: u32) -> BrokerResult<Arc<CompiledVersion>> {
        let not_found = || BrokerError::SchemaVersionNotFound {
            name: self.record.name.clone(),
            version,
        };
        let index = (version as usize).checked_sub(1).ok_or_else(not_found)?;
        let slot = self.compiled.get(index).ok_or_else(not_found)?;
        let source = &self.record.versions[index];
        slot.get_or_init(|| {
            compile_stored(&self.record, source).map(|validator| {
                Arc::new(CompiledVersion {
                    schema: self.record.name.clone(),
                    version,
                    validator,
                })
            })
        })
        .clone()
        // Stored versions compiled when they were created; failing now
        // means the stored data is damaged.
        .map_err(|reason| BrokerError::InvalidSchema { reason })
    }
}

fn compile_stored(
    record: &SchemaRecord,
    version: &storage::SchemaVersionRecord,
) -> Result<Validator, String> {
    let files: Vec<(String, String)> = version
        .files
        .iter()
        .map(|f| (f.name.clone(), f.content.clone()))
        .collect();
    Validator::compile(schema_type(record.r#type())?, &files, &version.message_type)
}

pub(crate) fn schema_type(stored: storage::SchemaType) -> Result<SchemaType, String> {
    match stored {
        storage::SchemaType::Json => Ok(SchemaType::Json),
        storage::SchemaType::Protobuf => Ok(SchemaType::Protobuf),
        storage::SchemaType::Unspecified => Err("schema type missing".to_owned()),
    }
}

pub(crate) fn storage_type(kind: SchemaType) -> storage::SchemaType {
    match kind {
        SchemaType::Json => storage::SchemaType::Json,
        SchemaType::Protobuf => storage::SchemaType::Protobuf,
    }
}
