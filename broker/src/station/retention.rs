//! Retention: removes a station's oldest messages once they are older than
//! the retention age, or beyond the retention count or bytes (0 = no limit),
//! and expires dedup entries older than the idempotency window.
//!
//! Run by the station actor on a timer, never on the produce path. Removal is
//! exact to the message: a record that straddles the cut is rewritten with
//! its surviving messages under the new first offset. Offsets are never
//! reused: the next offset stays in the counters even when the station
//! empties.

use depot_schemas::storage::{StationCounters, StoredRecord};

use crate::{
    error::BrokerResult,
    station::{StationLog, StationSettings, log::WriteBatch},
};

/// Applies the settings' limits and returns the counters after removal.
pub fn enforce(
    log: &StationLog,
    settings: &StationSettings,
    counters: StationCounters,
    now_ms: u64,
) -> BrokerResult<StationCounters> {
    let mut after = counters;
    let mut batch = WriteBatch::default();
    let mut changed = false;
    let age_limit_ms = settings.retention_age.as_millis() as u64;

    'records: for entry in log.records_from_start() {
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
    for entry in log.dedup_entries() {
        let (key, dedup) = entry?;
        if now_ms.saturating_sub(dedup.timestamp_ms) >= window_ms {
            batch.remove_key(key);
            changed = true;
        }
    }

    if changed {
        batch.put_counters(&after);
        log.apply(batch)?;
    }
    Ok(after)
}
