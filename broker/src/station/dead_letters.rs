//! A station's dead letters: messages its schema refused, kept with the
//! reason so nothing a producer sent is lost, and copies of stored messages
//! a consumer's workers never acknowledged (`actor/poison.rs`). One sled tree per station
//! (`dead-letters/<name>`), keyed by an id that grows with time (sled's
//! monotonic id generator), so the oldest come first and age-based
//! retention trims from the front.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use prost::Message;

use depot_schemas::storage::DeadLetterRecord;

use crate::error::BrokerResult;

/// Cheap to clone; every clone sees the same tree and setting.
#[derive(Clone)]
pub struct DeadLetters {
    db: sled::Db,
    tree: sled::Tree,
    /// The station's `keep_dead_letters` setting, read on the produce path.
    keep: Arc<AtomicBool>,
}

impl DeadLetters {
    pub fn new(db: sled::Db, tree: sled::Tree, keep: bool) -> Self {
        Self {
            db,
            tree,
            keep: Arc::new(AtomicBool::new(keep)),
        }
    }

    pub fn keeps(&self) -> bool {
        self.keep.load(Ordering::Relaxed)
    }

    pub fn set_keep(&self, keep: bool) {
        self.keep.store(keep, Ordering::Relaxed);
    }

    /// Stores a refused message under a new id (filled in and returned).
    /// Durable once the caller's group commit completes.
    pub fn add(&self, mut letter: DeadLetterRecord) -> BrokerResult<u64> {
        // Ids start at 1 so "after 0" means "from the oldest".
        letter.id = self.db.generate_id()? + 1;
        self.put(&letter)?;
        Ok(letter.id)
    }

    /// Writes a dead letter under its own id (a new reason after a resend).
    pub fn put(&self, letter: &DeadLetterRecord) -> BrokerResult<()> {
        self.tree
            .insert(letter.id.to_be_bytes(), letter.encode_to_vec())?;
        Ok(())
    }

    pub fn get(&self, id: u64) -> BrokerResult<Option<DeadLetterRecord>> {
        match self.tree.get(id.to_be_bytes())? {
            Some(value) => Ok(Some(DeadLetterRecord::decode(&*value)?)),
            None => Ok(None),
        }
    }

    /// Removes one; whether it was there.
    pub fn remove(&self, id: u64) -> BrokerResult<bool> {
        Ok(self.tree.remove(id.to_be_bytes())?.is_some())
    }

    /// The newest dead letter's id (0: none).
    pub fn newest_id(&self) -> BrokerResult<u64> {
        Ok(self.tree.last()?.map_or(0, |(key, _)| id_of(&key)))
    }

    /// Removes the oldest dead letters with ids up to `up_to`, at most
    /// `max`; returns how many, and whether any up to `up_to` remain.
    /// Letters that arrive meanwhile have newer ids, so a caller repeating
    /// this with the same `up_to` is done in a bounded number of passes.
    pub fn remove_oldest(&self, up_to: u64, max: usize) -> BrokerResult<(usize, bool)> {
        let removed = self.remove_front_while(max, |letter| letter.id <= up_to)?;
        let more = self
            .tree
            .first()?
            .is_some_and(|(key, _)| id_of(&key) <= up_to);
        Ok((removed, more))
    }

    /// Up to `limit` dead letters with ids above `after`, oldest first, and
    /// whether more follow.
    pub fn list(&self, after: u64, limit: usize) -> BrokerResult<(Vec<DeadLetterRecord>, bool)> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut letters = Vec::new();
        for entry in self.tree.range(start..) {
            let (_, value) = entry?;
            if letters.len() == limit {
                return Ok((letters, true));
            }
            letters.push(DeadLetterRecord::decode(&*value)?);
        }
        Ok((letters, false))
    }

    /// Removes dead letters stored before `cutoff_ms`, at most `max` of
    /// them (the caller runs another pass when it hit the limit); returns
    /// how many.
    pub fn trim_older_than(&self, cutoff_ms: u64, max: usize) -> BrokerResult<usize> {
        self.remove_front_while(max, |letter| letter.timestamp_ms < cutoff_ms)
    }

    /// Removes dead letters oldest first while `remove` says so, at most
    /// `max`; returns how many.
    fn remove_front_while(
        &self,
        max: usize,
        remove: impl Fn(&DeadLetterRecord) -> bool,
    ) -> BrokerResult<usize> {
        let mut removed = 0;
        for entry in self.tree.iter() {
            if removed == max {
                break;
            }
            let (key, value) = entry?;
            if !remove(&DeadLetterRecord::decode(&*value)?) {
                break;
            }
            self.tree.remove(key)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// A dead letter's id from its key (big-endian, so keys sort by id).
fn id_of(key: &[u8]) -> u64 {
    key.try_into().map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_stops_at_the_first_young_letter_and_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let letters = DeadLetters::new(db.clone(), db.open_tree("dead-letters/s").unwrap(), true);
        for timestamp_ms in [10, 20, 30, 40, 50] {
            letters
                .add(DeadLetterRecord {
                    timestamp_ms,
                    ..Default::default()
                })
                .unwrap();
        }
        assert_eq!(letters.trim_older_than(45, 2).unwrap(), 2, "the limit");
        assert_eq!(letters.trim_older_than(45, 2).unwrap(), 2, "the rest");
        assert_eq!(letters.trim_older_than(45, 2).unwrap(), 0, "50 is young");
        let (left, _) = letters.list(0, 10).unwrap();
        let stamps: Vec<u64> = left.iter().map(|l| l.timestamp_ms).collect();
        assert_eq!(stamps, vec![50]);
    }

    #[test]
    fn removing_the_oldest_stops_at_its_id_and_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let letters = DeadLetters::new(db.clone(), db.open_tree("dead-letters/s").unwrap(), true);
        let ids: Vec<u64> = (0..5)
            .map(|_| letters.add(DeadLetterRecord::default()).unwrap())
            .collect();
        assert_eq!(letters.newest_id().unwrap(), ids[4]);
        assert_eq!(letters.remove_oldest(ids[2], 2).unwrap(), (2, true));
        // One newer than the cut arrives: it stays.
        let late = letters.add(DeadLetterRecord::default()).unwrap();
        assert_eq!(letters.remove_oldest(ids[2], 2).unwrap(), (1, false));
        assert_eq!(letters.remove_oldest(ids[2], 2).unwrap(), (0, false));
        assert!(letters.remove(ids[3]).unwrap());
        assert!(!letters.remove(ids[3]).unwrap(), "gone already");
        let (left, _) = letters.list(0, 10).unwrap();
        let left: Vec<u64> = left.iter().map(|l| l.id).collect();
        assert_eq!(left, [ids[4], late]);
    }
}
