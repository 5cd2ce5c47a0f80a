//! A station's dead letters: messages its schema refused, kept with the
//! reason so nothing a producer sent is lost. One sled tree per station
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

    pub fn remove(&self, id: u64) -> BrokerResult<()> {
        self.tree.remove(id.to_be_bytes())?;
        Ok(())
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
        let mut removed = 0;
        for entry in self.tree.iter() {
            if removed == max {
                break;
            }
            let (key, value) = entry?;
            if DeadLetterRecord::decode(&*value)?.timestamp_ms >= cutoff_ms {
                break;
            }
            self.tree.remove(key)?;
            removed += 1;
        }
        Ok(removed)
    }
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
}
