//! Poison messages: a message a consumer's workers keep failing on (its
//! lease ended unacknowledged as often as the fetch's `max_deliveries`)
//! would otherwise come back forever and hold the consumer's position. It
//! goes to the station's dead letters instead, naming the consumer, and
//! counts as acknowledged for that consumer only: the message stays in the
//! station for every other reader.

use depot_schemas::storage::DeadLetterRecord;

use super::{LeasedMessage, StationActor};
use crate::{
    clock::now_ms,
    error::BrokerResult,
    station::{ConsumerName, log::headers_to_storage},
};

impl StationActor {
    /// Writes (unflushed) a dead letter for each of `poison`, unless the
    /// station drops its dead letters.
    pub(super) fn dead_letter_unacknowledged(
        &self,
        consumer: &ConsumerName,
        poison: Vec<LeasedMessage>,
    ) -> BrokerResult<()> {
        if !self.settings.keep_dead_letters {
            return Ok(());
        }
        for LeasedMessage {
            message,
            deliveries,
        } in poison
        {
            let consumer = consumer.as_str();
            let reason = format!(
                "consumer {consumer} was handed this message {deliveries} times without an acknowledgement (the fetch's max_deliveries)"
            );
            self.dead_letters.add(DeadLetterRecord {
                timestamp_ms: now_ms(),
                reason,
                producer: message.producer,
                headers: headers_to_storage(message.headers),
                content_type: message.content_type,
                payload: message.payload,
                consumer: consumer.to_owned(),
                offset: message.offset,
                deliveries,
                // Not the message's id: a resend appends a new message.
                ..Default::default()
            })?;
        }
        Ok(())
    }
}
