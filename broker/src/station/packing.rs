//! How a [`StoredRecord`] is encoded as a sled value: packed.
//!
//! A record's messages mostly share their producer and content type, have
//! consecutive offsets and near timestamps, and carry ids the broker made
//! (UUIDs). Written out in full, that is ~80 bytes of each 100-byte message
//! (the id alone is 36 characters); packed ([`RecordPacking`]), the shared
//! fields are written once per record, offsets are implied, timestamps are
//! small deltas and UUIDs take their 16 bytes: 125 bytes instead of 176 for
//! a 100-byte message, fewer bytes to write, flush and keep. [`unpack`]
//! restores the exact record, and reads records written before packing
//! existed unchanged.

use bytes::Bytes;
use prost::Message as _;
use uuid::Uuid;

use depot_schemas::storage::{RecordPacking, StoredMessage, StoredRecord};

use crate::error::{BrokerError, BrokerResult};

/// Encodes `record` (a run of consecutive offsets) packed. A record whose
/// offsets are not consecutive, which the broker never writes, is encoded
/// in full rather than wrongly.
pub fn pack(mut record: StoredRecord) -> Vec<u8> {
    let Some(first) = record.messages.first() else {
        return record.encode_to_vec();
    };
    let consecutive = record
        .messages
        .iter()
        .zip(first.offset..)
        .all(|(message, offset)| message.offset == offset);
    if !consecutive {
        return record.encode_to_vec();
    }
    let packing = RecordPacking {
        first_offset: first.offset,
        base_timestamp_ms: first.timestamp_ms,
        content_type: shared(&record.messages, |m| &m.content_type),
        producer: shared(&record.messages, |m| &m.producer),
    };
    for message in &mut record.messages {
        message.offset = 0;
        // Wrapping both ways: exact for any two timestamps.
        message.timestamp_delta_ms =
            message.timestamp_ms.wrapping_sub(packing.base_timestamp_ms) as i64;
        message.timestamp_ms = 0;
        if !packing.content_type.is_empty() {
            message.content_type.clear();
        }
        if !packing.producer.is_empty() {
            message.producer.clear();
        }
        if let Some(uuid) = canonical_uuid(&message.id) {
            message.uuid = Bytes::copy_from_slice(uuid.as_bytes());
            message.id.clear();
        }
    }
    record.packing = Some(packing);
    record.encode_to_vec()
}

/// Decodes a record written by [`pack`], or by a broker before packing.
pub fn unpack(value: &[u8]) -> BrokerResult<StoredRecord> {
    let mut record = StoredRecord::decode(value)?;
    let Some(packing) = record.packing.take() else {
        return Ok(record);
    };
    for (message, offset) in record.messages.iter_mut().zip(packing.first_offset..) {
        message.offset = offset;
        message.timestamp_ms = packing
            .base_timestamp_ms
            .wrapping_add(message.timestamp_delta_ms as u64);
        message.timestamp_delta_ms = 0;
        if !packing.content_type.is_empty() {
            message.content_type.clone_from(&packing.content_type);
        }
        if !packing.producer.is_empty() {
            message.producer.clone_from(&packing.producer);
        }
        if !message.uuid.is_empty() {
            let uuid = Uuid::from_slice(&message.uuid).map_err(|_| BrokerError::CorruptValue {
                reason: "a packed message id is not 16 bytes",
            })?;
            message.id = uuid.hyphenated().to_string();
            message.uuid = Bytes::new();
        }
    }
    Ok(record)
}

/// The value every message has for `field`, or empty when they differ.
fn shared(messages: &[StoredMessage], field: impl Fn(&StoredMessage) -> &String) -> String {
    let first = field(&messages[0]);
    if messages[1..].iter().all(|m| field(m) == first) {
        first.clone()
    } else {
        String::new()
    }
}

/// `id` as a UUID when its text is exactly the UUID's canonical form (so
/// the text is restored byte for byte): 36 characters is the hyphenated
/// form, and no uppercase.
fn canonical_uuid(id: &str) -> Option<Uuid> {
    if id.len() != 36 || id.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Uuid::try_parse(id).ok()
}

#[cfg(test)]
mod tests {
    use depot_schemas::storage::Header;

    use super::*;

    fn message(offset: u64) -> StoredMessage {
        StoredMessage {
            offset,
            id: Uuid::now_v7().to_string(),
            timestamp_ms: 1_764_800_000_000 + offset,
            content_type: "application/json".into(),
            payload: Bytes::from(vec![b'x'; 100]),
            producer: "root".into(),
            ..Default::default()
        }
    }

    fn record(messages: Vec<StoredMessage>) -> StoredRecord {
        StoredRecord {
            messages,
            packing: None,
        }
    }

    #[test]
    fn a_typical_record_comes_back_exactly_and_over_a_quarter_smaller() {
        let original = record((40..140).map(message).collect());
        let packed = pack(original.clone());
        assert_eq!(unpack(&packed).unwrap(), original);
        let full = original.encode_to_vec().len();
        assert!(
            packed.len() * 4 < full * 3,
            "packed {} bytes, in full {full}",
            packed.len()
        );
    }

    #[test]
    fn fields_the_messages_do_not_share_stay_with_each_message() {
        let mut messages: Vec<_> = (0..6).map(message).collect();
        messages[1].content_type = "text/plain".into();
        messages[2].producer = "alice".into();
        // Ids a producer chose, only some of them canonical UUIDs.
        messages[3].id = "order-17".into();
        messages[3].producer_id = true;
        messages[4].id = messages[4].id.to_uppercase();
        messages[5].id = Uuid::now_v7().simple().to_string();
        // A clock that went back, and an empty content type.
        messages[5].timestamp_ms = 5;
        messages[0].content_type = String::new();
        messages[2].headers = vec![Header {
            key: "k".into(),
            value: "v".into(),
        }];
        let original = record(messages);
        assert_eq!(unpack(&pack(original.clone())).unwrap(), original);
    }

    #[test]
    fn records_written_before_packing_are_read_as_they_are() {
        let original = record((7..10).map(message).collect());
        assert_eq!(unpack(&original.encode_to_vec()).unwrap(), original);
    }

    #[test]
    fn offsets_that_do_not_follow_on_are_written_in_full() {
        let original = record(vec![message(3), message(5)]);
        let encoded = pack(original.clone());
        assert_eq!(encoded, original.encode_to_vec());
        assert_eq!(unpack(&encoded).unwrap(), original);
    }
}
