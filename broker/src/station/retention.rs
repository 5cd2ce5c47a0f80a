//! Retention: removes a station's oldest messages once they are older than
//! the retention age, or beyond the retention count or bytes (0 = no limit),
//! and expires dedup entries older than the idempotency window.
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

/// Applies the settings' limits, removing at most `max_records` records,
/// and returns the counters after removal. Dedup entries are expired by the
/// pass that finishes the records, at most `max_records` of them, oldest
/// first through their time keys: a pass reads the expired entries only,
/// not the whole window (millions at a high rate of msg-ids).
pub fn enforce(
    log: &StationLog,
    settings: &StationSettings,
    counters: StationCounters,
    now_ms: u64,
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
            let expired = (age_limit_ms > 0
                && now_ms.saturating_sub(message.timestamp_ms) > age_limit_ms)
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
            batch.put_record(&survivors);
            break 'records;
        }
    }

    let window_ms = settings.idempotency_window.as_millis() as u64;
    if let (false, Some(cutoff_ms)) = (more, now_ms.checked_sub(window_ms)) {
        for (expired, entry) in log.expired_dedup(cutoff_ms).enumerate() {
            if expired == max_records {
                more = true;
                break;
            }
            let time = entry?;
            batch.remove_key(time.key);
            // A msg-id stored again after its window has a newer entry,
            // with a time key of its own: that entry stays.
            let current = log.dedup_entry(&time.msg_id)?;
            if current.is_some_and(|entry| entry.timestamp_ms == time.timestamp_ms) {
                batch.remove_key(dedup_key(&time.msg_id).into());
            }
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
            })
            .collect();
        let counters = StationCounters {
            next_offset: count,
            first_offset: 0,
            bytes: count * 10,
        };
        log.append(&records, &[], &counters).unwrap();
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
            let pass = enforce(&log, &settings, counters, now_ms, 1_000).unwrap();
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
        let entry = |timestamp_ms| DedupEntry {
            offset: 0,
            timestamp_ms,
        };
        // 2,500 ids stamped at 1 s, one more at 100 s; "again" first at
        // 1 s, then stored again at 100 s (its window had passed).
        let mut dedup: Vec<(String, DedupEntry)> = (0..2_500)
            .map(|n| (format!("id-{n}"), entry(1_000)))
            .collect();
        dedup.push(("late".into(), entry(100_000)));
        dedup.push(("again".into(), entry(1_000)));
        log.append(&[], &dedup, &counters).unwrap();
        log.append(&[], &[("again".into(), entry(100_000))], &counters)
            .unwrap();

        // At 105 s the window (10 s) keeps only what was stamped at 100 s.
        let mut passes = 0;
        loop {
            let pass = enforce(&log, &settings, counters, 105_000, 1_000).unwrap();
            passes += 1;
            if !pass.more {
                break;
            }
        }
        assert_eq!(passes, 3, "2,501 expired time keys in passes of 1,000");
        assert!(log.dedup_entry("id-0").unwrap().is_none());
        assert!(log.dedup_entry("id-2499").unwrap().is_none());
        assert_eq!(log.dedup_entry("late").unwrap(), Some(entry(100_000)));
        assert_eq!(log.dedup_entry("again").unwrap(), Some(entry(100_000)));
        assert_eq!(
            log.expired_dedup(u64::MAX).count(),
            2,
            "their time keys stay"
        );
    }

    #[test]
    fn a_pass_within_its_limit_says_it_is_done() {
        let (_dir, log, counters) = log_of(10);
        let settings = StationSettings {
            retention_messages: 4,
            ..StationSettings::default()
        };
        let pass = enforce(&log, &settings, counters, 2_000, 1_000).unwrap();
        assert!(!pass.more);
        assert_eq!(pass.counters.first_offset, 6);
        assert_eq!(log.records_from_start().count(), 4);
    }
}
