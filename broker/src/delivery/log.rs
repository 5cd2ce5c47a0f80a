//! A subscription's delivery state in sled, one tree per subscription
//! (`subscription/<id>`):
//!
//! | key                                  | value                   |
//! |--------------------------------------|-------------------------|
//! | `c`                                  | cursor: the next offset to admit (u64, big-endian) |
//! | `m`                                  | mark: no delivery below it awaits its first attempt |
//! | `d` + offset                         | `DeliveryRecord`        |
//! | `a` + offset + attempt number        | `DeliveryAttemptRecord` |
//! | `p` + offset                         | (empty): pending after an attempt (a retry is due) |
//! | `i` + delivery id                    | offset (u64, big-endian): find a delivery by id |
//!
//! Writes per delivery are what delivery throughput costs, so the common
//! case (delivered at the first attempt) is two writes: the record and its
//! id at admission, the record with its `only_attempt` at the end. Retries
//! cost more: each attempt is a record of its own and the `p` index marks
//! the delivery pending (in the same batch as the record).
//!
//! A restart finds the pending deliveries without reading every delivery
//! ever made: those in the `p` index (retries) and those at or above the
//! mark (admitted, never attempted). The mark is written with the cursor;
//! it only ever rises, so an old mark is safe (a longer scan).
//!
//! Admitting deliveries and moving the cursor is one atomic batch: after a
//! crash every message below the cursor has its delivery record, and every
//! message at or above it is admitted again, so none is skipped (at least
//! once). Pending deliveries keep their attempt count and due time, so
//! retries resume on their schedule.

use prost::Message as _;

use depot_schemas::storage::{DeliveryAttemptRecord, DeliveryRecord, DeliveryStatus};

use crate::error::BrokerResult;

const CURSOR: &[u8] = b"c";
const MARK: &[u8] = b"m";
const DELIVERY: u8 = b'd';
const ATTEMPT: u8 = b'a';
const PENDING: u8 = b'p';
const BY_ID: u8 = b'i';

#[derive(Clone)]
pub struct DeliveryLog {
    tree: sled::Tree,
}

fn delivery_key(offset: u64) -> [u8; 9] {
    let mut key = [DELIVERY; 9];
    key[1..].copy_from_slice(&offset.to_be_bytes());
    key
}

fn pending_key(offset: u64) -> [u8; 9] {
    let mut key = [PENDING; 9];
    key[1..].copy_from_slice(&offset.to_be_bytes());
    key
}

/// Writes a delivery and keeps the pending index in step with its status:
/// pending after an attempt is indexed; never attempted is found through
/// the mark; finished is not indexed (and only a delivery that was
/// attempted more than once, or resent, can have an entry to remove).
fn put_delivery(batch: &mut sled::Batch, delivery: &DeliveryRecord) {
    batch.insert(&delivery_key(delivery.offset), delivery.encode_to_vec());
    let pending = delivery.status() == DeliveryStatus::Pending;
    if pending && delivery.attempts > 0 {
        batch.insert(&pending_key(delivery.offset), &[]);
    } else if !pending && (delivery.attempts > 1 || delivery.attempts_before_resend > 0) {
        batch.remove(&pending_key(delivery.offset));
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    u64::from_be_bytes(array)
}

fn id_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(BY_ID);
    key.extend_from_slice(id.as_bytes());
    key
}

fn attempt_key(offset: u64, number: u32) -> [u8; 13] {
    let mut key = [ATTEMPT; 13];
    key[1..9].copy_from_slice(&offset.to_be_bytes());
    key[9..].copy_from_slice(&number.to_be_bytes());
    key
}

impl DeliveryLog {
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// The next offset to admit; `None` before the first admission.
    pub fn cursor(&self) -> BrokerResult<Option<u64>> {
        Ok(self.tree.get(CURSOR)?.map(|v| read_u64(&v)))
    }

    /// Records new deliveries and moves the cursor to `next_cursor`, in one
    /// atomic batch. Filtered-out messages simply have no record. `mark`:
    /// no delivery below it is still waiting for its first attempt.
    pub fn admit(
        &self,
        deliveries: &[DeliveryRecord],
        next_cursor: u64,
        mark: u64,
    ) -> BrokerResult<()> {
        let mut batch = sled::Batch::default();
        for delivery in deliveries {
            put_delivery(&mut batch, delivery);
            batch.insert(id_key(&delivery.id), &delivery.offset.to_be_bytes());
        }
        batch.insert(CURSOR, &next_cursor.to_be_bytes());
        batch.insert(MARK, &mark.min(next_cursor).to_be_bytes());
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    pub fn delivery(&self, offset: u64) -> BrokerResult<Option<DeliveryRecord>> {
        match self.tree.get(delivery_key(offset))? {
            Some(value) => Ok(Some(DeliveryRecord::decode(&*value)?)),
            None => Ok(None),
        }
    }

    /// The delivery with this id (the `webhook-id` receivers saw).
    pub fn find(&self, id: &str) -> BrokerResult<Option<DeliveryRecord>> {
        match self.tree.get(id_key(id))? {
            Some(offset) => self.delivery(read_u64(&offset)),
            None => Ok(None),
        }
    }

    /// Saves a delivery's new state together with the attempt that led to
    /// it: inside the record when it was the first and last attempt, as a
    /// record of its own otherwise.
    pub fn record_attempt(
        &self,
        delivery: &mut DeliveryRecord,
        attempt: DeliveryAttemptRecord,
    ) -> BrokerResult<()> {
        let finished = delivery.status() != DeliveryStatus::Pending;
        if attempt.number == 1 && finished {
            // One key: a plain insert. (A sled batch takes the database's
            // write lock, which cost half the delivery rate here.)
            delivery.only_attempt = Some(attempt);
            self.tree
                .insert(delivery_key(delivery.offset), delivery.encode_to_vec())?;
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        // A resent delivery's first attempt sat in its record: it becomes a
        // record of its own, so the history stays whole.
        if let Some(first) = delivery.only_attempt.take() {
            batch.insert(
                &attempt_key(delivery.offset, first.number),
                first.encode_to_vec(),
            );
        }
        batch.insert(
            &attempt_key(delivery.offset, attempt.number),
            attempt.encode_to_vec(),
        );
        put_delivery(&mut batch, delivery);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Saves a delivery's state (a resend puts a failed one back to pending).
    pub fn put(&self, delivery: &DeliveryRecord) -> BrokerResult<()> {
        let mut batch = sled::Batch::default();
        put_delivery(&mut batch, delivery);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Every pending delivery, in offset order (to resume after a restart):
    /// the indexed retries, and the never attempted from the mark on.
    pub fn pending(&self) -> BrokerResult<Vec<DeliveryRecord>> {
        let mut pending = std::collections::BTreeMap::new();
        for key in self.tree.scan_prefix([PENDING]).keys() {
            let offset = read_u64(&key?[1..]);
            if let Some(delivery) = self.delivery(offset)? {
                pending.insert(offset, delivery);
            }
        }
        let mark = self.tree.get(MARK)?.map_or(0, |v| read_u64(&v));
        for entry in self.tree.range(delivery_key(mark)..=delivery_key(u64::MAX)) {
            let delivery = DeliveryRecord::decode(&*entry?.1)?;
            if delivery.status() == DeliveryStatus::Pending {
                pending.insert(delivery.offset, delivery);
            }
        }
        Ok(pending.into_values().collect())
    }

    /// Deliveries after `after` (an offset), optionally of one status, at
    /// most `limit`, in offset order; and whether more follow.
    pub fn deliveries(
        &self,
        after: Option<u64>,
        status: Option<DeliveryStatus>,
        limit: usize,
    ) -> BrokerResult<(Vec<DeliveryRecord>, bool)> {
        let start = match after {
            Some(offset) => match offset.checked_add(1) {
                Some(next) => delivery_key(next),
                None => return Ok((Vec::new(), false)),
            },
            None => delivery_key(0),
        };
        let mut found = Vec::new();
        for entry in self.tree.range(start..=delivery_key(u64::MAX)) {
            let (_, value) = entry?;
            let delivery = DeliveryRecord::decode(&*value)?;
            if status.is_some_and(|s| delivery.status() != s) {
                continue;
            }
            if found.len() == limit {
                return Ok((found, true));
            }
            found.push(delivery);
        }
        Ok((found, false))
    }

    /// Removes finished (completed or failed) deliveries created before
    /// `created_before_ms`, with their attempts, at most `max` of them;
    /// returns how many went. Pending deliveries stay, however old.
    ///
    /// Records are in offset order, which is creation order, so the scan
    /// stops at the first one young enough: each call costs what it removes
    /// (plus any old pending deliveries it steps over).
    pub fn expire(&self, created_before_ms: u64, max: usize) -> BrokerResult<usize> {
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for entry in self.tree.range(delivery_key(0)..=delivery_key(u64::MAX)) {
            let (key, value) = entry?;
            let delivery = DeliveryRecord::decode(&*value)?;
            if delivery.created_at_ms >= created_before_ms || removed == max {
                break;
            }
            if delivery.status() == DeliveryStatus::Pending {
                continue;
            }
            batch.remove(key);
            batch.remove(id_key(&delivery.id));
            if delivery.only_attempt.is_none() {
                let prefix = &attempt_key(delivery.offset, 0)[..9];
                for attempt in self.tree.scan_prefix(prefix).keys() {
                    batch.remove(attempt?);
                }
            }
            removed += 1;
        }
        if removed > 0 {
            self.tree.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// The attempts of the delivery at `offset`, in order.
    pub fn attempts(&self, offset: u64) -> BrokerResult<Vec<DeliveryAttemptRecord>> {
        if let Some(only) = self.delivery(offset)?.and_then(|d| d.only_attempt) {
            return Ok(vec![only]);
        }
        let prefix = &attempt_key(offset, 0)[..9];
        self.tree
            .scan_prefix(prefix)
            .values()
            .map(|value| Ok(DeliveryAttemptRecord::decode(&*value?)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(offset: u64, status: DeliveryStatus) -> DeliveryRecord {
        let mut record = DeliveryRecord {
            id: format!("d-{offset}"),
            offset,
            ..Default::default()
        };
        record.set_status(status);
        record
    }

    #[test]
    fn admissions_move_the_cursor_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let log = DeliveryLog::new(db.open_tree("subscription/s1").unwrap());
            assert_eq!(log.cursor().unwrap(), None);
            // Offset 1 was filtered out: no record, but the cursor passes it.
            let admitted = [
                delivery(0, DeliveryStatus::Pending),
                delivery(2, DeliveryStatus::Pending),
            ];
            log.admit(&admitted, 3, 0).unwrap();
            let mut done = log.delivery(0).unwrap().unwrap();
            done.set_status(DeliveryStatus::Completed);
            done.attempts = 1;
            let attempt = DeliveryAttemptRecord {
                number: 1,
                response_status: 200,
                ..Default::default()
            };
            log.record_attempt(&mut done, attempt).unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let log = DeliveryLog::new(db.open_tree("subscription/s1").unwrap());
        assert_eq!(log.cursor().unwrap(), Some(3));
        let pending: Vec<u64> = log.pending().unwrap().iter().map(|d| d.offset).collect();
        assert_eq!(pending, [2]);
        assert_eq!(log.attempts(0).unwrap()[0].response_status, 200);
        assert!(log.attempts(2).unwrap().is_empty());
        assert!(log.delivery(1).unwrap().is_none());
        assert_eq!(log.find("d-2").unwrap().unwrap().offset, 2);
        assert!(log.find("d-1").unwrap().is_none());
    }

    #[test]
    fn expiry_removes_old_finished_deliveries_and_keeps_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = DeliveryLog::new(db.open_tree("subscription/s3").unwrap());
        let records: Vec<_> = (0..6)
            .map(|o| {
                let status = match o {
                    1 => DeliveryStatus::Pending,
                    4 => DeliveryStatus::Failed,
                    _ => DeliveryStatus::Completed,
                };
                DeliveryRecord {
                    created_at_ms: o * 100,
                    ..delivery(o, status)
                }
            })
            .collect();
        log.admit(&records, 6, 0).unwrap();
        for record in &records {
            let attempt = DeliveryAttemptRecord {
                number: 1,
                ..Default::default()
            };
            log.record_attempt(&mut record.clone(), attempt).unwrap();
        }
        // Created before 450: offsets 0..=4, but 1 is still pending; at
        // most 2 per call.
        assert_eq!(log.expire(450, 2).unwrap(), 2);
        assert_eq!(log.expire(450, 2).unwrap(), 2);
        assert_eq!(log.expire(450, 2).unwrap(), 0);
        let left: Vec<u64> = log
            .deliveries(None, None, 10)
            .unwrap()
            .0
            .iter()
            .map(|d| d.offset)
            .collect();
        assert_eq!(left, [1, 5]);
        assert!(log.attempts(0).unwrap().is_empty());
        assert!(log.find("d-0").unwrap().is_none());
        assert_eq!(log.attempts(5).unwrap().len(), 1);
        assert_eq!(log.pending().unwrap().len(), 1);
    }

    #[test]
    fn pending_finds_retries_by_index_and_the_unattempted_from_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = DeliveryLog::new(db.open_tree("subscription/s4").unwrap());
        let records: Vec<_> = (0..4)
            .map(|o| delivery(o, DeliveryStatus::Pending))
            .collect();
        log.admit(&records, 4, 0).unwrap();
        // 0 failed once (a retry is due), 1 delivered at once, 2 and 3 not
        // attempted yet; a later admission says nothing below 2 awaits a
        // first attempt.
        let mut retry = records[0].clone();
        retry.attempts = 1;
        let attempt = |number| DeliveryAttemptRecord {
            number,
            response_status: 500,
            ..Default::default()
        };
        log.record_attempt(&mut retry, attempt(1)).unwrap();
        let mut done = records[1].clone();
        done.attempts = 1;
        done.set_status(DeliveryStatus::Completed);
        log.record_attempt(&mut done, attempt(1)).unwrap();
        log.admit(&[], 4, 2).unwrap();
        let pending: Vec<u64> = log.pending().unwrap().iter().map(|d| d.offset).collect();
        assert_eq!(pending, [0, 2, 3]);
        // The retry succeeds: its attempts are records of their own, and
        // it leaves the index.
        retry.attempts = 2;
        retry.set_status(DeliveryStatus::Completed);
        log.record_attempt(&mut retry, attempt(2)).unwrap();
        assert_eq!(log.attempts(0).unwrap().len(), 2);
        assert_eq!(log.attempts(1).unwrap().len(), 1);
        let pending: Vec<u64> = log.pending().unwrap().iter().map(|d| d.offset).collect();
        assert_eq!(pending, [2, 3]);
    }

    #[test]
    fn a_resent_delivery_keeps_its_first_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = DeliveryLog::new(db.open_tree("subscription/s5").unwrap());
        log.admit(&[delivery(0, DeliveryStatus::Pending)], 1, 0)
            .unwrap();
        let attempt = |number, status| DeliveryAttemptRecord {
            number,
            response_status: status,
            ..Default::default()
        };
        // Refused at once (410): failed, its attempt inside the record.
        let mut record = log.delivery(0).unwrap().unwrap();
        record.attempts = 1;
        record.set_status(DeliveryStatus::Failed);
        log.record_attempt(&mut record, attempt(1, 410)).unwrap();
        // Resent, then delivered.
        let mut resent = log.delivery(0).unwrap().unwrap();
        resent.set_status(DeliveryStatus::Pending);
        resent.attempts_before_resend = 1;
        log.put(&resent).unwrap();
        assert_eq!(log.pending().unwrap().len(), 1);
        resent.attempts = 2;
        resent.set_status(DeliveryStatus::Completed);
        log.record_attempt(&mut resent, attempt(2, 200)).unwrap();
        let statuses: Vec<u32> = log
            .attempts(0)
            .unwrap()
            .iter()
            .map(|a| a.response_status)
            .collect();
        assert_eq!(statuses, [410, 200]);
        assert!(log.pending().unwrap().is_empty());
    }

    #[test]
    fn deliveries_page_and_filter_by_status() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = DeliveryLog::new(db.open_tree("subscription/s2").unwrap());
        let records: Vec<_> = (0..5)
            .map(|o| {
                let status = if o % 2 == 0 {
                    DeliveryStatus::Failed
                } else {
                    DeliveryStatus::Completed
                };
                delivery(o, status)
            })
            .collect();
        log.admit(&records, 5, 0).unwrap();
        let (page, more) = log.deliveries(None, None, 2).unwrap();
        assert_eq!((page.len(), more), (2, true));
        let (rest, more) = log.deliveries(Some(page[1].offset), None, 10).unwrap();
        assert_eq!((rest.len(), more), (3, false));
        let (failed, _) = log
            .deliveries(None, Some(DeliveryStatus::Failed), 10)
            .unwrap();
        assert_eq!(
            failed.iter().map(|d| d.offset).collect::<Vec<_>>(),
            [0, 2, 4]
        );
        assert!(
            log.deliveries(Some(u64::MAX), None, 10)
                .unwrap()
                .0
                .is_empty()
        );
    }
}
