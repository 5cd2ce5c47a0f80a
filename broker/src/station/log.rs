//! [`StationLog`]: one station's sled tree, and how messages sit in it.
//!
//! Keys, by their first byte:
//! - `r` + offset (u64 big-endian): a `StoredRecord`, a run of consecutive
//!   messages starting at that offset. Big-endian keys sort by offset.
//! - `d` + msg-id: a `DedupEntry` (the idempotency index).
//! - `t` + timestamp (ms, u64 big-endian) + offset (u64 big-endian): a
//!   `DedupGroup`, the msg-ids of the dedup entries one write added, keyed
//!   by the newest one's time and the write's first offset. Expiry reads
//!   these in time order and stops at the first group inside the window
//!   ([`StationLog::expired_dedup`]), instead of reading every entry of the
//!   window; one key per write, not per message, costs the producers little.
//! - `c`: the `StationCounters` (next offset, first offset, bytes).
//! - `p` + consumer name: a consumer's position ([`super::positions`]).
//!
//! A group of produces is written with plain inserts, in this order: its
//! records, its dedup entries and their group, then the counters
//! ([`StationLog::append`]).
//! Not one `sled::Batch`: a batch takes sled's global write lock, which
//! every other writer (other stations, deliveries) then queues behind. A
//! crash can leave a prefix of a group's inserts (never an acknowledged
//! group: acknowledgement waits for the flush that covers all of it), so
//! recovery ([`StationLog::recover`]) brings the counters and dedup entries
//! up to the records found beyond them. Retention, rare, still uses one
//! batch ([`StationLog::apply`]). Only the station actor writes; anyone may
//! read (sled is concurrent).

use prost::Message as _;

use depot_schemas::storage::{
    DedupEntry, DedupGroup, Header, StationCounters, StoredMessage, StoredRecord,
};

use crate::{
    error::BrokerResult,
    station::{
        Message,
        packing::{pack, unpack},
        positions::Positions,
    },
};

const RECORD_TAG: u8 = b'r';
const DEDUP_TAG: u8 = b'd';
const DEDUP_GROUP_TAG: u8 = b't';
const COUNTERS_KEY: &[u8] = b"c";

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max_messages: usize,
    /// Payload bytes; at least one message is returned whatever its size.
    pub max_bytes: u64,
}

/// What a read returns.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub messages: Vec<Message>,
    /// Where the next read should start.
    pub next_offset: u64,
}

/// A handle on one station's tree; cheap to clone.
#[derive(Clone)]
pub struct StationLog {
    tree: sled::Tree,
}

pub fn record_key(offset: u64) -> [u8; 9] {
    let mut key = [RECORD_TAG; 9];
    key[1..].copy_from_slice(&offset.to_be_bytes());
    key
}

/// A record as its sled entry: keyed by its first offset, packed.
fn record_entry(record: StoredRecord) -> ([u8; 9], Vec<u8>) {
    let first = record.messages.first().expect("records are never empty");
    (record_key(first.offset), pack(record))
}

fn offset_of_record_key(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[1..9].try_into().expect("record keys are 9 bytes"))
}

pub fn dedup_key(msg_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + msg_id.len());
    key.push(DEDUP_TAG);
    key.extend_from_slice(msg_id);
    key
}

fn dedup_group_key(newest_ms: u64, first_offset: u64) -> [u8; 17] {
    let mut key = [DEDUP_GROUP_TAG; 17];
    key[1..9].copy_from_slice(&newest_ms.to_be_bytes());
    key[9..].copy_from_slice(&first_offset.to_be_bytes());
    key
}

/// A group of dedup entries whose newest has left the window, as expiry
/// reads it.
pub struct ExpiredDedupGroup {
    /// The group's key, to remove.
    pub key: sled::IVec,
    pub msg_ids: Vec<String>,
}

impl StationLog {
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// The consumer positions kept in the same tree.
    pub fn positions(&self) -> Positions {
        Positions::new(self.tree.clone())
    }

    pub fn counters(&self) -> BrokerResult<StationCounters> {
        match self.tree.get(COUNTERS_KEY)? {
            Some(value) => Ok(StationCounters::decode(&*value)?),
            None => Ok(StationCounters::default()),
        }
    }

    pub fn dedup_entry(&self, msg_id: impl AsRef<[u8]>) -> BrokerResult<Option<DedupEntry>> {
        match self.tree.get(dedup_key(msg_id.as_ref()))? {
            Some(value) => Ok(Some(DedupEntry::decode(&*value)?)),
            None => Ok(None),
        }
    }

    /// Writes a group of produces: its records, its dedup entries, then the
    /// counters, each a plain insert (see the module's doc for why, and for
    /// what a crash in the middle leaves).
    pub fn append(
        &self,
        records: Vec<StoredRecord>,
        dedup: &[(String, DedupEntry)],
        counters: &StationCounters,
    ) -> BrokerResult<()> {
        for record in records {
            let (key, value) = record_entry(record);
            self.tree.insert(key, value)?;
        }
        self.put_dedup(dedup)?;
        self.tree.insert(COUNTERS_KEY, counters.encode_to_vec())?;
        Ok(())
    }

    /// Dedup entries, and their group under its time key.
    fn put_dedup(&self, dedup: &[(String, DedupEntry)]) -> BrokerResult<()> {
        for (msg_id, entry) in dedup {
            self.tree
                .insert(dedup_key(msg_id.as_bytes()), entry.encode_to_vec())?;
        }
        self.put_dedup_group(dedup)
    }

    /// The group of `dedup`'s msg-ids, keyed by its newest entry's time and
    /// its first offset; nothing when `dedup` is empty.
    fn put_dedup_group(&self, dedup: &[(String, DedupEntry)]) -> BrokerResult<()> {
        if dedup.is_empty() {
            return Ok(());
        }
        let (first, newest) = dedup.iter().fold((u64::MAX, 0), |(first, newest), (_, e)| {
            (first.min(e.offset), newest.max(e.timestamp_ms))
        });
        let group = DedupGroup {
            msg_ids: dedup.iter().map(|(msg_id, _)| msg_id.clone()).collect(),
        };
        self.tree
            .insert(dedup_group_key(newest, first), group.encode_to_vec())?;
        Ok(())
    }

    /// The counters, brought up to the records a crash left beyond them
    /// (a group whose counters were not written): their messages count,
    /// their dedup entries are restored, and records that do not follow on
    /// (a gap: writes persisted out of order) are removed. Such messages
    /// were never acknowledged; keeping them is what an acknowledgement
    /// lost in the crash would have promised.
    pub fn recover(&self) -> BrokerResult<StationCounters> {
        let mut counters = self.counters()?;
        let mut expected = counters.next_offset;
        let mut changed = false;
        let beyond: Vec<_> = self
            .tree
            .range(record_key(expected)..=record_key(u64::MAX))
            .collect::<Result<_, _>>()?;
        for (key, value) in beyond {
            let record = unpack(&value)?;
            let first = offset_of_record_key(&key);
            if first != expected || record.messages.is_empty() {
                tracing::warn!(
                    offset = first,
                    "removing a record written out of order before a crash"
                );
                self.tree.remove(key)?;
                continue;
            }
            let mut dedup = Vec::new();
            for message in &record.messages {
                counters.bytes += message.payload.len() as u64;
                if message.producer_id {
                    let entry = DedupEntry {
                        offset: message.offset,
                        timestamp_ms: message.timestamp_ms,
                    };
                    dedup.push((message.id.clone(), entry));
                }
                expected = message.offset + 1;
            }
            self.put_dedup(&dedup)?;
            changed = true;
        }
        if changed {
            counters.next_offset = expected;
            self.tree.insert(COUNTERS_KEY, counters.encode_to_vec())?;
        }
        self.index_dedup_entries_written_without()?;
        Ok(counters)
    }

    /// Puts every dedup entry in a group of its own when the tree has
    /// entries but no groups: a store written before groups existed, whose
    /// entries would otherwise never expire. Once, on the first start.
    fn index_dedup_entries_written_without(&self) -> BrokerResult<()> {
        let has_entries = self.tree.scan_prefix([DEDUP_TAG]).next().is_some();
        let has_groups = self.tree.scan_prefix([DEDUP_GROUP_TAG]).next().is_some();
        if !has_entries || has_groups {
            return Ok(());
        }
        for entry in self.tree.scan_prefix([DEDUP_TAG]) {
            let (key, value) = entry?;
            let entry = DedupEntry::decode(&*value)?;
            let msg_id = String::from_utf8_lossy(&key[1..]).into_owned();
            // The entry is there already: only its group is missing.
            self.put_dedup_group(&[(msg_id, entry)])?;
        }
        Ok(())
    }

    /// Removes records from `offset` on (what a failed write left).
    pub fn discard_from(&self, offset: u64) -> BrokerResult<()> {
        for key in self
            .tree
            .range(record_key(offset)..=record_key(u64::MAX))
            .keys()
        {
            self.tree.remove(key?)?;
        }
        Ok(())
    }

    /// Applies a write batch built with [`WriteBatch`] atomically.
    pub fn apply(&self, batch: WriteBatch) -> BrokerResult<()> {
        self.tree.apply_batch(batch.0)?;
        Ok(())
    }

    /// Reads messages with offsets in `from..head`, oldest first. Offsets
    /// below the oldest stored message (removed by retention) are skipped.
    pub fn read(&self, from: u64, head: u64, limits: ReadLimits) -> BrokerResult<ReadBatch> {
        let mut batch = ReadBatch {
            messages: Vec::new(),
            next_offset: from,
        };
        if from >= head || limits.max_messages == 0 {
            return Ok(batch);
        }
        // The record holding `from` starts at or before it.
        let start = match self
            .tree
            .range(record_key(0)..=record_key(from))
            .next_back()
        {
            Some(entry) => offset_of_record_key(&entry?.0),
            None => from,
        };
        let mut bytes = 0u64;
        for entry in self.tree.range(record_key(start)..record_key(head)) {
            let (_, value) = entry?;
            let record = unpack(&value)?;
            for stored in record.messages {
                if stored.offset < batch.next_offset {
                    continue;
                }
                if stored.offset >= head
                    || batch.messages.len() >= limits.max_messages
                    || (!batch.messages.is_empty()
                        && bytes + stored.payload.len() as u64 > limits.max_bytes)
                {
                    return Ok(batch);
                }
                bytes += stored.payload.len() as u64;
                batch.next_offset = stored.offset + 1;
                batch.messages.push(message_from_storage(stored));
            }
        }
        // Every record below the head was seen: nothing else is there (what
        // is missing was removed by retention).
        batch.next_offset = head;
        Ok(batch)
    }

    /// Every record with the offset of its first message, oldest first, for
    /// retention to decide what to remove (it stops early, so this is lazy).
    pub fn records_from_start(
        &self,
    ) -> impl Iterator<Item = BrokerResult<(u64, StoredRecord)>> + '_ {
        self.tree
            .range(record_key(0)..=record_key(u64::MAX))
            .map(|entry| {
                let (key, value) = entry?;
                Ok((offset_of_record_key(&key), unpack(&value)?))
            })
    }

    /// The dedup groups whose newest entry was stamped at or before
    /// `cutoff_ms`, oldest first: every entry in them is as old or older.
    pub fn expired_dedup(
        &self,
        cutoff_ms: u64,
    ) -> impl Iterator<Item = BrokerResult<ExpiredDedupGroup>> + '_ {
        let start = dedup_group_key(0, 0);
        let end = dedup_group_key(cutoff_ms.saturating_add(1), 0);
        self.tree.range(start..end).map(|entry| {
            let (key, value) = entry?;
            let msg_ids = DedupGroup::decode(&*value)?.msg_ids;
            Ok(ExpiredDedupGroup { key, msg_ids })
        })
    }
}

/// An atomic set of changes to a station's tree.
/// (Retention's removals.)
#[derive(Default)]
pub struct WriteBatch(sled::Batch);

impl WriteBatch {
    pub fn put_record(&mut self, record: StoredRecord) {
        let (key, value) = record_entry(record);
        self.0.insert(&key, value);
    }

    pub fn remove_record(&mut self, first_offset: u64) {
        self.0.remove(&record_key(first_offset));
    }

    pub fn remove_key(&mut self, key: sled::IVec) {
        self.0.remove(key);
    }

    pub fn put_counters(&mut self, counters: &StationCounters) {
        self.0.insert(COUNTERS_KEY, counters.encode_to_vec());
    }
}

/// Headers as stored (with a message, or a dead letter).
pub fn headers_to_storage(headers: Vec<(String, String)>) -> Vec<Header> {
    headers
        .into_iter()
        .map(|(key, value)| Header { key, value })
        .collect()
}

pub fn message_to_storage(message: Message, producer_id: bool) -> StoredMessage {
    StoredMessage {
        offset: message.offset,
        id: message.id,
        timestamp_ms: message.timestamp_ms,
        headers: headers_to_storage(message.headers),
        content_type: message.content_type,
        payload: message.payload,
        producer: message.producer,
        producer_id,
        // Only a packed record's encoding uses these (`station::packing`).
        uuid: Default::default(),
        timestamp_delta_ms: 0,
    }
}

pub fn message_from_storage(stored: StoredMessage) -> Message {
    Message {
        offset: stored.offset,
        id: stored.id,
        timestamp_ms: stored.timestamp_ms,
        headers: stored
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
        content_type: stored.content_type,
        payload: stored.payload,
        producer: stored.producer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offsets: std::ops::Range<u64>) -> StoredRecord {
        StoredRecord {
            messages: offsets
                .map(|offset| StoredMessage {
                    offset,
                    id: format!("m-{offset}"),
                    timestamp_ms: 1_000 + offset,
                    payload: vec![b'x'; 10].into(),
                    producer_id: offset % 2 == 0,
                    ..Default::default()
                })
                .collect(),
            packing: None,
        }
    }

    fn counters(next_offset: u64, bytes: u64) -> StationCounters {
        StationCounters {
            next_offset,
            first_offset: 0,
            bytes,
        }
    }

    #[test]
    fn recovery_counts_records_a_crash_left_beyond_the_counters() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = StationLog::new(db.open_tree("station/s").unwrap());
        log.append(vec![record(0..3)], &[], &counters(3, 30))
            .unwrap();
        // A group whose records landed but whose dedup entries and counters
        // did not; and a record after a gap (written out of order).
        log.tree
            .insert(record_key(3), record(3..5).encode_to_vec())
            .unwrap();
        log.tree
            .insert(record_key(9), record(9..10).encode_to_vec())
            .unwrap();
        let recovered = log.recover().unwrap();
        assert_eq!(recovered.next_offset, 5);
        assert_eq!(recovered.bytes, 50);
        assert_eq!(log.counters().unwrap(), recovered, "written back");
        assert_eq!(log.dedup_entry("m-4").unwrap().unwrap().offset, 4);
        assert!(
            log.dedup_entry("m-3").unwrap().is_none(),
            "not a producer id"
        );
        let read = log
            .read(
                0,
                20,
                ReadLimits {
                    max_messages: 100,
                    max_bytes: u64::MAX,
                },
            )
            .unwrap();
        let offsets: Vec<u64> = read.messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [0, 1, 2, 3, 4], "the stray record is gone");
        // Nothing beyond: recovery changes nothing.
        assert_eq!(log.recover().unwrap(), recovered);
    }

    #[test]
    fn a_failed_write_can_be_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = StationLog::new(db.open_tree("station/s").unwrap());
        log.append(vec![record(0..2), record(2..4)], &[], &counters(4, 40))
            .unwrap();
        log.discard_from(2).unwrap();
        let read = log
            .read(
                0,
                4,
                ReadLimits {
                    max_messages: 100,
                    max_bytes: u64::MAX,
                },
            )
            .unwrap();
        assert_eq!(read.messages.len(), 2);
    }

    fn expired_ids(log: &StationLog, cutoff_ms: u64) -> Vec<String> {
        log.expired_dedup(cutoff_ms)
            .flat_map(|group| group.unwrap().msg_ids)
            .collect()
    }

    #[test]
    fn dedup_groups_are_read_back_in_time_order_up_to_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = StationLog::new(db.open_tree("station/s").unwrap());
        let entry = |offset, timestamp_ms| DedupEntry {
            offset,
            timestamp_ms,
        };
        // Three writes, the newest first; a group goes by its newest entry.
        log.append(vec![], &[("z".into(), entry(4, 3_000))], &counters(5, 0))
            .unwrap();
        let group = [("b".into(), entry(2, 900)), ("a".into(), entry(3, 2_000))];
        log.append(vec![], &group, &counters(4, 0)).unwrap();
        log.append(vec![], &[("m".into(), entry(0, 1_000))], &counters(1, 0))
            .unwrap();
        assert_eq!(expired_ids(&log, 999), Vec::<String>::new());
        assert_eq!(expired_ids(&log, 1_999), ["m"]);
        assert_eq!(
            expired_ids(&log, 2_000),
            ["m", "b", "a"],
            "the cutoff included"
        );
        assert_eq!(expired_ids(&log, u64::MAX), ["m", "b", "a", "z"]);
    }

    #[test]
    fn a_store_written_before_dedup_groups_gets_them_on_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = StationLog::new(db.open_tree("station/s").unwrap());
        // As an older Depot wrote them: dedup entries alone.
        for (id, timestamp_ms) in [("old", 1_000u64), ("new", 5_000)] {
            let entry = DedupEntry {
                offset: 0,
                timestamp_ms,
            };
            log.tree
                .insert(dedup_key(id.as_bytes()), entry.encode_to_vec())
                .unwrap();
        }
        assert_eq!(expired_ids(&log, u64::MAX), Vec::<String>::new());
        log.recover().unwrap();
        assert_eq!(expired_ids(&log, 1_000), ["old"]);
        assert_eq!(expired_ids(&log, u64::MAX), ["old", "new"]);
    }
}
