//! The sled database and its layout. Everything the broker keeps lives under
//! one data directory:
//!
//! | tree              | key            | value                          |
//! |-------------------|----------------|--------------------------------|
//! | `stations`        | station name   | `StationDefinition`            |
//! | `users`           | user name      | `UserRecord` (argon2 hashes)   |
//! | `meta`            | `jwt-signing-key` | the proxies' JWT key        |
//! | `used-tokens`     | jti            | expiry (ms, big-endian u64)    |
//! | `schemas`         | schema name    | `SchemaRecord` (all versions)  |
//! | `station/<name>`  | see `station::log` (records, dedup index, counters) |
//! | `dead-letters/<name>` | id (big-endian u64) | `DeadLetterRecord`     |
//! | `subscriptions`   | subscription id | `SubscriptionRecord`          |
//! | `subscription/<id>` | see `delivery::log` (cursor, deliveries, attempts) |
//!
//! Values are protobuf (`depot_schemas::storage`), so the format is written
//! down in `schemas/proto/depot/storage/v1/storage.proto`.

use prost::Message;

use depot_schemas::storage::{SchemaRecord, StationDefinition, SubscriptionRecord, UserRecord};

use crate::{
    config::BrokerOptions,
    error::{BrokerError, BrokerResult},
    station::StationName,
};

const STATIONS_TREE: &str = "stations";
const USERS_TREE: &str = "users";
const META_TREE: &str = "meta";
const USED_TOKENS_TREE: &str = "used-tokens";
/// Key of the JWT signing key in the `meta` tree.
const SIGNING_KEY: &str = "jwt-signing-key";
/// Bytes of the JWT signing key (HMAC-SHA256 wants at least 32).
const SIGNING_KEY_BYTES: usize = 32;
const SCHEMAS_TREE: &str = "schemas";
const SUBSCRIPTIONS_TREE: &str = "subscriptions";
const SUBSCRIPTION_TREE_PREFIX: &str = "subscription/";
const STATION_TREE_PREFIX: &str = "station/";
const DEAD_LETTER_TREE_PREFIX: &str = "dead-letters/";

/// Why the database did not open: sled locks its file, so a second process
/// on the same directory fails with `WouldBlock`, which is worth naming.
fn opening_failed(error: sled::Error, data_dir: &std::path::Path) -> BrokerError {
    match error {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
            BrokerError::DataDirectoryInUse {
                path: data_dir.display().to_string(),
            }
        }
        other => other.into(),
    }
}

/// The open database; cheap to clone (sled handles are reference counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    stations: sled::Tree,
    users: sled::Tree,
    meta: sled::Tree,
    used_tokens: sled::Tree,
    schemas: sled::Tree,
    subscriptions: sled::Tree,
}

impl Store {
    pub fn open(options: &BrokerOptions) -> BrokerResult<Self> {
        let db = sled::Config::new()
            .path(&options.data_dir)
            .cache_capacity(options.cache_bytes)
            // Depot decides when to fsync (`persist::group_commit`); sled's
            // own timer would only add flushes nobody waits for.
            .flush_every_ms(None)
            .open()
            .map_err(|error| opening_failed(error, &options.data_dir))?;
        Ok(Self {
            stations: db.open_tree(STATIONS_TREE)?,
            users: db.open_tree(USERS_TREE)?,
            meta: db.open_tree(META_TREE)?,
            used_tokens: db.open_tree(USED_TOKENS_TREE)?,
            schemas: db.open_tree(SCHEMAS_TREE)?,
            subscriptions: db.open_tree(SUBSCRIPTIONS_TREE)?,
            db,
        })
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    pub fn station_definitions(&self) -> BrokerResult<Vec<StationDefinition>> {
        self.stations
            .iter()
            .values()
            .map(|value| Ok(StationDefinition::decode(&*value?)?))
            .collect()
    }

    pub fn station_definition(
        &self,
        name: &StationName,
    ) -> BrokerResult<Option<StationDefinition>> {
        match self.stations.get(name.as_str())? {
            Some(value) => Ok(Some(StationDefinition::decode(&*value)?)),
            None => Ok(None),
        }
    }

    pub fn put_station_definition(&self, definition: &StationDefinition) -> BrokerResult<()> {
        self.stations
            .insert(definition.name.as_bytes(), definition.encode_to_vec())?;
        Ok(())
    }

    pub fn remove_station_definition(&self, name: &StationName) -> BrokerResult<()> {
        self.stations.remove(name.as_str())?;
        Ok(())
    }

    pub fn open_station_tree(&self, name: &StationName) -> BrokerResult<sled::Tree> {
        Ok(self.db.open_tree(station_tree_name(name.as_str()))?)
    }

    /// Drops a station's log and its dead letters.
    pub fn drop_station_tree(&self, name: &StationName) -> BrokerResult<()> {
        self.db.drop_tree(station_tree_name(name.as_str()))?;
        self.db.drop_tree(dead_letter_tree_name(name.as_str()))?;
        Ok(())
    }

    pub fn open_dead_letter_tree(&self, name: &StationName) -> BrokerResult<sled::Tree> {
        Ok(self.db.open_tree(dead_letter_tree_name(name.as_str()))?)
    }

    pub fn schema_records(&self) -> BrokerResult<Vec<SchemaRecord>> {
        self.schemas
            .iter()
            .values()
            .map(|value| Ok(SchemaRecord::decode(&*value?)?))
            .collect()
    }

    pub fn put_schema(&self, record: &SchemaRecord) -> BrokerResult<()> {
        self.schemas
            .insert(record.name.as_bytes(), record.encode_to_vec())?;
        Ok(())
    }

    pub fn remove_schema(&self, name: &str) -> BrokerResult<()> {
        self.schemas.remove(name)?;
        Ok(())
    }

    pub fn subscription_records(&self) -> BrokerResult<Vec<SubscriptionRecord>> {
        self.subscriptions
            .iter()
            .values()
            .map(|value| Ok(SubscriptionRecord::decode(&*value?)?))
            .collect()
    }

    pub fn put_subscription(&self, record: &SubscriptionRecord) -> BrokerResult<()> {
        self.subscriptions
            .insert(record.id.as_bytes(), record.encode_to_vec())?;
        Ok(())
    }

    /// Removes a subscription with its delivery records.
    pub fn remove_subscription(&self, id: &str) -> BrokerResult<()> {
        self.subscriptions.remove(id)?;
        self.db
            .drop_tree(format!("{SUBSCRIPTION_TREE_PREFIX}{id}"))?;
        Ok(())
    }

    pub fn open_subscription_tree(&self, id: &str) -> BrokerResult<sled::Tree> {
        Ok(self
            .db
            .open_tree(format!("{SUBSCRIPTION_TREE_PREFIX}{id}"))?)
    }

    /// Drops station trees that have no definition: left behind when a crash
    /// interrupted a create or a delete between its two writes.
    pub fn drop_orphan_station_trees(&self) -> BrokerResult<()> {
        for tree_name in self.db.tree_names() {
            let Some(station) = tree_name
                .strip_prefix(STATION_TREE_PREFIX.as_bytes())
                .or_else(|| tree_name.strip_prefix(DEAD_LETTER_TREE_PREFIX.as_bytes()))
            else {
                continue;
            };
            if !self.stations.contains_key(station)? {
                tracing::warn!(
                    station = %String::from_utf8_lossy(station),
                    "dropping the log of a station that has no definition"
                );
                self.db.drop_tree(&tree_name)?;
            }
        }
        Ok(())
    }

    pub fn user(&self, name: &str) -> BrokerResult<Option<UserRecord>> {
        match self.users.get(name)? {
            Some(value) => Ok(Some(UserRecord::decode(&*value)?)),
            None => Ok(None),
        }
    }

    pub fn put_user(&self, user: &UserRecord) -> BrokerResult<()> {
        self.users
            .insert(user.name.as_bytes(), user.encode_to_vec())?;
        Ok(())
    }

    /// The JWT signing key, made on first use (random, 32 bytes).
    pub fn signing_key(&self) -> BrokerResult<Vec<u8>> {
        if let Some(key) = self.meta.get(SIGNING_KEY)? {
            return Ok(key.to_vec());
        }
        let key: [u8; SIGNING_KEY_BYTES] = rand::random();
        // Two callers racing: the first key stored wins for both.
        let _ = self
            .meta
            .compare_and_swap(SIGNING_KEY, None as Option<&[u8]>, Some(&key[..]))?;
        Ok(self.meta.get(SIGNING_KEY)?.expect("just stored").to_vec())
    }

    /// Records a single-use token; false if it was recorded before.
    pub fn consume_token(&self, jti: &str, expires_at_ms: u64) -> BrokerResult<bool> {
        let swapped = self.used_tokens.compare_and_swap(
            jti,
            None as Option<&[u8]>,
            Some(&expires_at_ms.to_be_bytes()[..]),
        )?;
        Ok(swapped.is_ok())
    }

    /// Forgets used tokens that have expired anyway.
    pub fn purge_used_tokens(&self, now_ms: u64) -> BrokerResult<usize> {
        let mut purged = 0;
        for entry in self.used_tokens.iter() {
            let (jti, expiry) = entry?;
            let expiry = u64::from_be_bytes(expiry.as_ref().try_into().unwrap_or([0; 8]));
            if expiry < now_ms {
                self.used_tokens.remove(jti)?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Whether a user was there to remove.
    pub fn remove_user(&self, name: &str) -> BrokerResult<bool> {
        Ok(self.users.remove(name)?.is_some())
    }

    /// Every user, sorted by name.
    pub fn users(&self) -> BrokerResult<Vec<UserRecord>> {
        self.users
            .iter()
            .values()
            .map(|value| Ok(UserRecord::decode(&*value?)?))
            .collect()
    }
}

fn station_tree_name(station: &str) -> String {
    format!("{STATION_TREE_PREFIX}{station}")
}

fn dead_letter_tree_name(station: &str) -> String {
    format!("{DEAD_LETTER_TREE_PREFIX}{station}")
}
