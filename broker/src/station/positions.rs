//! Consumer positions: how far each named consumer got in a station.
//!
//! A reader that restarts, or another instance taking over its work, asks
//! for its consumer's position instead of remembering an offset itself, and
//! commits the next offset once it has handled what it fetched (at least
//! once: a crash between handling and committing reads those messages
//! again). Positions live in the station's own tree, under key `p` +
//! consumer name (beside the records of [`super::log`]), so they go with
//! the station when it is deleted. The station's actor writes them
//! ([`super::actor::CommitPosition`]), durable before the answer; anyone
//! reads them.
//!
//! Beside them, under `a` + consumer name + 0 + offset (big-endian), are
//! the acknowledgements of a work queue's workers that the position could
//! not move over yet (a message before them is still leased or due
//! again): kept, so that a restart hands out again only what nobody
//! acknowledged. They go once the position passes them.

use prost::Message as _;

use depot_schemas::storage::ConsumerPosition;

use crate::error::{BrokerError, BrokerResult};

const POSITION_TAG: u8 = b'p';
const ACK_TAG: u8 = b'a';

/// A consumer name: the rule station names follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerName(String);

impl ConsumerName {
    pub fn parse(name: &str) -> BrokerResult<Self> {
        if super::name::is_valid_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(BrokerError::bad_request(format!(
                "invalid consumer name {name:?}: names match ^[a-z0-9][a-z0-9._-]{{0,127}}$"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn position_key(consumer: &ConsumerName) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + consumer.0.len());
    key.push(POSITION_TAG);
    key.extend_from_slice(consumer.0.as_bytes());
    key
}

/// Where `consumer`'s acknowledgements start; names never hold a 0 byte, so
/// one consumer's never run into another's.
fn ack_prefix(consumer: &ConsumerName) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + consumer.0.len() + 8);
    key.push(ACK_TAG);
    key.extend_from_slice(consumer.0.as_bytes());
    key.push(0);
    key
}

fn ack_key(consumer: &ConsumerName, offset: u64) -> Vec<u8> {
    let mut key = ack_prefix(consumer);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

/// The positions in one station's tree; cheap to clone.
#[derive(Clone)]
pub struct Positions {
    tree: sled::Tree,
}

impl Positions {
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    pub fn get(&self, consumer: &ConsumerName) -> BrokerResult<Option<ConsumerPosition>> {
        match self.tree.get(position_key(consumer))? {
            Some(value) => Ok(Some(ConsumerPosition::decode(&*value)?)),
            None => Ok(None),
        }
    }

    /// Every consumer's position, by name.
    pub fn all(&self) -> BrokerResult<Vec<(String, ConsumerPosition)>> {
        self.tree
            .scan_prefix([POSITION_TAG])
            .map(|entry| {
                let (key, value) = entry?;
                let name = String::from_utf8_lossy(&key[1..]).into_owned();
                Ok((name, ConsumerPosition::decode(&*value)?))
            })
            .collect()
    }

    pub fn count(&self) -> usize {
        self.tree.scan_prefix([POSITION_TAG]).count()
    }

    /// Only the station's actor writes (see the module's doc).
    pub(super) fn set(
        &self,
        consumer: &ConsumerName,
        position: &ConsumerPosition,
    ) -> BrokerResult<()> {
        self.tree
            .insert(position_key(consumer), position.encode_to_vec())?;
        Ok(())
    }

    /// Whether there was a position to remove.
    pub(super) fn remove(&self, consumer: &ConsumerName) -> BrokerResult<bool> {
        Ok(self.tree.remove(position_key(consumer))?.is_some())
    }

    /// `consumer`'s acknowledgements beyond its position, oldest first.
    pub(super) fn acks(&self, consumer: &ConsumerName) -> BrokerResult<Vec<u64>> {
        let prefix = ack_prefix(consumer);
        self.tree
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, _) = entry?;
                let offset = key[prefix.len()..].try_into().map(u64::from_be_bytes);
                offset.map_err(|_| BrokerError::CorruptValue {
                    reason: "an acknowledgement's key is not consumer + 0 + offset",
                })
            })
            .collect()
    }

    /// Keeps acknowledgements beyond the position (only the station's
    /// actor writes).
    pub(super) fn add_acks(&self, consumer: &ConsumerName, offsets: &[u64]) -> BrokerResult<()> {
        for &offset in offsets {
            self.tree.insert(ack_key(consumer, offset), &[])?;
        }
        Ok(())
    }

    /// Removes `consumer`'s acknowledgements below `below` (the position
    /// moved past them; `u64::MAX`: all of them); how many there were.
    pub(super) fn remove_acks_below(
        &self,
        consumer: &ConsumerName,
        below: u64,
    ) -> BrokerResult<usize> {
        let prefix = ack_prefix(consumer);
        let end = match below {
            u64::MAX => {
                let mut end = prefix.clone();
                *end.last_mut().expect("a prefix ends in 0") = 1;
                end
            }
            below => ack_key(consumer, below),
        };
        let mut removed = 0;
        for entry in self.tree.range(prefix..end) {
            let (key, _) = entry?;
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
    fn positions_are_listed_by_name_and_kept_apart_from_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let positions = Positions::new(db.open_tree("station/s").unwrap());
        let at = |next_offset| ConsumerPosition {
            next_offset,
            updated_at_ms: 1,
            updated_by: "root".into(),
        };
        let (billing, audit) = (
            ConsumerName::parse("billing").unwrap(),
            ConsumerName::parse("audit").unwrap(),
        );
        positions.set(&billing, &at(7)).unwrap();
        positions.set(&audit, &at(3)).unwrap();
        positions.set(&billing, &at(9)).unwrap();

        assert_eq!(positions.get(&billing).unwrap(), Some(at(9)));
        let names: Vec<_> = positions
            .all()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["audit", "billing"]);
        assert_eq!(positions.count(), 2);
        assert!(positions.remove(&audit).unwrap());
        assert!(!positions.remove(&audit).unwrap());
        assert_eq!(positions.get(&audit).unwrap(), None);
    }

    #[test]
    fn acknowledgements_are_kept_per_consumer_until_the_position_passes() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let positions = Positions::new(db.open_tree("station/s").unwrap());
        let (jobs, jobs2) = (
            ConsumerName::parse("jobs").unwrap(),
            ConsumerName::parse("jobs2").unwrap(),
        );
        positions.add_acks(&jobs, &[300, 7, 256]).unwrap();
        positions.add_acks(&jobs2, &[1]).unwrap();
        assert_eq!(positions.acks(&jobs).unwrap(), [7, 256, 300]);
        assert_eq!(positions.remove_acks_below(&jobs, 256).unwrap(), 1);
        assert_eq!(positions.acks(&jobs).unwrap(), [256, 300]);
        assert_eq!(positions.remove_acks_below(&jobs, u64::MAX).unwrap(), 2);
        assert_eq!(positions.acks(&jobs).unwrap(), Vec::<u64>::new());
        assert_eq!(positions.acks(&jobs2).unwrap(), [1], "another consumer's");
        assert_eq!(positions.count(), 0, "acknowledgements are not positions");
    }

    #[test]
    fn names_follow_the_station_rule() {
        assert!(ConsumerName::parse("billing-v2.eu_1").is_ok());
        for name in ["", "Billing", "a/b", &"x".repeat(129)] {
            let error = ConsumerName::parse(name).unwrap_err().to_string();
            assert!(error.contains("^[a-z0-9][a-z0-9._-]{0,127}$"), "{error}");
        }
    }
}
