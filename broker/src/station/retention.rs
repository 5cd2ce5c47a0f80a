//! Retention: removes a station's oldest messages once they are older than
//! the retention age, or beyond the retention count or bytes (0 = no limit),
//! or below the offset an operator purged the station to, and expires dedup
//! entries older than the idempotency window.
//!
//! Run by the station actor on a timer, never on the produce path, in passes
//! of at most [`RECORDS_PER_PASS`] records: the actor shares its thread with
//! connections and other stations, so a station with millions of expired
//! messages is trimmed in steps, with produces and other work in between,
//! not in one long stall. Removal is exact to the message: a record that
//! straddles the cut is rewritten with its surviving messages under the new
//! first offset. Offsets are never reused: the next offset stays in the
//! counters even when the station empties.

use depot_schemas::storage::{StationCounters, StoredRecord};

use crate::{
    error::BrokerResult,
    station::{
        StationLog, StationSettings,
        log::{WriteBatch, dedup_key},
    },
};

/// Records (of up to ~4 KiB of payload each) one pass removes at most.
pub const RECORDS_PER_PASS: usize = 1024;

/// The outcome of one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub counters: StationCounters,
    /// The pass stopped at its limit: more may be due, run another.
    pub more: bool,
}

/// Applies the settings' limits, and removes every message below
/// `purge_before` (0: none), removing at most `max_records` records, and
/// returns the counters after removal. Dedup entries are expired by the
/// pass that finishes the records, oldest first through their groups, until
/// `max_records` of them are removed (whole groups: a group is one write's):
/// a pass reads the expired entries only, not the whole window (millions at
/// a high rate of msg-ids).
pub fn enforce(
    log: &StationLog,
    settings: &StationSettings,
    counters: StationCounters,
    now_ms: u64,
    purge_before: u64,
    max_records: usize,
) -> BrokerResult<Pass> {
    let mut after = counters;
    let mut batch = WriteBatch::default();
    let mut changed = false;
    let mut more = false;
    let age_limit_ms = settings.retention_age.as_millis() as u64;

    // Every record the loop goes past is removed (it stops at the first
    // one that keeps a message), so the index counts the removed ones.
    'records: for (removed, entry) in log.records_from_start().enumerate() {
        if removed == max_records {
            more = true;
            break 'records;
        }
        let (first_offset, record) = entry?;
        let mut survivors = StoredRecord::default();
        let mut removed_any = false;
        for message in record.messages {
            let count = after.next_offset - message.offset;
            let expired = message.offset < purge_before
                || (age_limit_ms > 0 && now_ms.saturating_sub(message.timestamp_ms) > age_limit_ms)
                || (settings.retention_messages > 0 && count > settings.retention_messages)
                || (settings.retention_bytes > 0 && after.bytes > settings.retention_bytes);
            if expired && survivors.messages.is_empty() {
                after.first_offset = message.offset + 1;
                after.bytes -= message.payload.len() as u64;
                removed_any = true;
            } else {
                survivors.messages.push(message);
            }
        }
        if !removed_any {
            break 'records;
        }
        changed = true;
        batch.remove_record(first_offset);
        if !survivors.messages.is_empty() {
            batch.put_record(survivors);
            break 'records;
        }
    }

    let window_ms = settings.idempotency_window.as_millis() as u64;
    if let (false, Some(cutoff_ms)) = (more, now_ms.checked_sub(window_ms)) {
        let mut expired = 0;
        for group in log.expired_dedup(cutoff_ms) {
            if expired >= max_records {
                more = true;
                break;
            }
            let group = group?;
            for msg_id in &group.msg_ids {
                // A msg-id stored again after its window has a newer
                // entry, in a newer group: that entry stays.
                let current = log.dedup_entry(msg_id)?;
                if current.is_some_and(|entry| entry.timestamp_ms <= cutoff_ms) {
                    batch.remove_key(dedup_key(msg_id.as_bytes()).into());
                }
            }
            expired += group.msg_ids.len().max(1);
            batch.remove_key(group.key);
            changed = true;
        }
    }

    if changed {
        batch.put_counters(&after);
        log.apply(batch)?;
    }
    Ok(Pass {
        counters: after,
        more,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use depot_schemas::storage::{DedupEntry, StoredMessage};

    use super::*;

    /// A log of `count` records of one 10-byte message each, all stamped at
    /// 1 s after the epoch.
    fn log_of(count: u64) -> (tempfile::TempDir, StationLog, StationCounters) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = StationLog::new(db.open_tree("station/s").unwrap());
        let records: Vec<StoredRecord> = (0..count)
            .map(|offset| StoredRecord {
                messages: vec![StoredMessage {
                    offset,
                    timestamp_ms: 1_000,
                    payload: vec![b'x'; 10].into(),
                    ..Default::default()
                }],
                packing: None,
            })
            .collect();
        let counters = StationCounters {
            next_offset: count,
            first_offset: 0,
            bytes: count * 10,
        };
        log.append(records, &[], &counters).unwrap();
        (dir, log, counters)
    }

    #[test]
    fn a_large_expiry_is_removed_in_bounded_passes() {
        let (_dir, log, mut counters) = log_of(2_500);
        let settings = StationSettings {
            retention_age: Duration::from_secs(60),
            ..StationSettings::default()
        };
        let now_ms = 1_000 + 3_600_000;
        let mut passes = Vec::new();
        loop {
            let pass = enforce(&log, &settings, counters, now_ms, 0, 1_000).unwrap();
            counters = pass.counters;
            passes.push(counters.first_offset);
            if !pass.more {
                break;
            }
        }
        assert_eq!(passes, vec![1_000, 2_000, 2_500]);
        assert_eq!(counters.bytes, 0);
        assert_eq!(counters.next_offset, 2_500, "offsets are never reused");
        assert_eq!(log.records_from_start().count(), 0);
    }

    #[test]
    fn dedup_entries_expire_oldest_first_in_bounded_passes_and_a_newer_entry_stays() {
        let (_dir, log, counters) = log_of(0);
        let settings = StationSettings {
            idempotency_window: Duration::from_secs(10),
            ..StationSettings::default()
        };
        // Offsets go on from write to write, as the actor hands them out.
        let next_offset = std::cell::Cell::new(0);
        let write = |ids: Vec<String>, timestamp_ms| {
            let dedup: Vec<_> = ids
                .into_iter()
                .map(|id| {
                    let offset = next_offset.replace(next_offset.get() + 1);
                    (
                        id,
                        DedupEntry {
                            offset,
                            timestamp_ms,
                        },
                    )
                })
                .collect();
            log.append(vec![], &dedup, &counters).unwrap();
        };
        // 25 writes of 100 ids stamped at 1 s; "again" at 1 s and stored
        // again at 100 s (its window had passed); "late" at 100 s.
        for write_number in 0..25 {
            write(
                (0..100).map(|n| format!("id-{write_number}-{n}")).collect(),
                1_000,
            );
        }
        write(vec!["again".into()], 1_000);
        write(vec!["again".into(), "late".into()], 100_000);

        // At 105 s the window (10 s) keeps only what was stamped at 100 s.
        let mut passes = 0;
        loop {
            let pass = enforce(&log, &settings, counters, 105_000, 0, 1_000).unwrap();
            passes += 1;
            if !pass.more {
                break;
            }
        }
        assert_eq!(passes, 3, "2,501 expired entries in passes of 1,000");
        assert!(log.dedup_entry("id-0-0").unwrap().is_none());
        assert!(log.dedup_entry("id-24-99").unwrap().is_none());
        let stamp = |id| log.dedup_entry(id).unwrap().map(|e| e.timestamp_ms);
        assert_eq!(stamp("late"), Some(100_000));
        assert_eq!(stamp("again"), Some(100_000));
        let left: Vec<_> = log
            .expired_dedup(u64::MAX)
            .map(|g| g.unwrap().msg_ids)
            .collect();
        assert_eq!(left, [vec!["again".to_owned(), "late".to_owned()]]);
    }

    #[test]
    fn a_pass_within_its_limit_says_it_is_done() {
        let (_dir, log, counters) = log_of(10);
        let settings = StationSettings {
            retention_messages: 4,
            ..StationSettings::default()
        };
        let pass = enforce(&log, &settings, counters, 2_000, 0, 1_000).unwrap();
        assert!(!pass.more);
        assert_eq!(pass.counters.first_offset, 6);
        assert_eq!(log.records_from_start().count(), 4);
    }

    #[test]
    fn a_purge_removes_exactly_the_messages_below_its_offset() {
        let (_dir, log, counters) = log_of(0);
        // One record of five messages (offsets 0-4), then one of offset 5.
        let message = |offset| StoredMessage {
            offset,
            timestamp_ms: 1_000,
            payload: vec![b'x'; 10].into(),
            ..Default::default()
        };
        let records = vec![
            StoredRecord {
                messages: (0..5).map(message).collect(),
                packing: None,
            },
            StoredRecord {
                messages: vec![message(5)],
                packing: None,
            },
        ];
        let counters = StationCounters {
            next_offset: 6,
            bytes: 60,
            ..counters
        };
        log.append(records, &[], &counters).unwrap();

        // Settings that keep everything: only the purge removes.
        let settings = StationSettings::default();
        let pass = enforce(&log, &settings, counters, 2_000, 3, 1_000).unwrap();
        assert!(!pass.more);
        assert_eq!(pass.counters.first_offset, 3);
        assert_eq!(pass.counters.bytes, 30);
        assert_eq!(pass.counters.next_offset, 6);
        // The straddling record was rewritten with its survivors.
        let offsets: Vec<u64> = log
            .records_from_start()
            .flat_map(|r| r.unwrap().1.messages.into_iter().map(|m| m.offset))
            .collect();
        assert_eq!(offsets, [3, 4, 5]);

        let all = enforce(&log, &settings, pass.counters, 2_000, 6, 1_000).unwrap();
        assert_eq!(all.counters.first_offset, 6);
        assert_eq!(all.counters.bytes, 0);
        assert_eq!(log.records_from_start().count(), 0);
    }
}
