//! Schema validation on the produce path. Runs on the caller's thread (a
//! wire connection or an HTTP worker), before the station's actor sees the
//! messages, so producers validate in parallel and the single writer only
//! appends.

use depot_schemas::storage::DeadLetterRecord;

use crate::{
    clock::now_ms,
    error::BrokerResult,
    schema::CompiledVersion,
    station::{NewMessage, ProduceOutcome, RejectReason, StationHandle, log::headers_to_storage},
};

/// A produce split by its schema.
pub(super) struct Validated {
    /// To append, in request order.
    pub valid: Vec<NewMessage>,
    /// Request index and reason of every refused message, ascending.
    pub refused: Vec<(usize, RejectReason)>,
    /// Whether refused messages were written to the dead letters (which
    /// must then be made durable before the producer is answered).
    pub dead_lettered: bool,
}

impl Validated {
    pub fn unchecked(messages: Vec<NewMessage>) -> Self {
        Self {
            valid: messages,
            refused: Vec::new(),
            dead_lettered: false,
        }
    }

    /// Validates every message; refused ones are written to the station's
    /// dead letters (unless it drops them). The caller makes those writes
    /// durable before answering.
    pub fn check(
        station: &StationHandle,
        schema: &CompiledVersion,
        producer: &str,
        messages: Vec<NewMessage>,
    ) -> BrokerResult<Self> {
        let mut valid = Vec::with_capacity(messages.len());
        let mut refused = Vec::new();
        let mut dead_lettered = false;
        for (index, mut message) in messages.into_iter().enumerate() {
            match schema
                .validator
                .check(&message.content_type, &message.payload)
            {
                Ok(accepted) => {
                    accepted.apply(&mut message);
                    valid.push(message);
                }
                Err(failure) => {
                    if station.dead_letters.keeps() {
                        station.dead_letters.add(dead_letter(
                            schema,
                            producer,
                            &failure.to_string(),
                            message,
                        ))?;
                        dead_lettered = true;
                    }
                    refused.push((index, RejectReason::Invalid(failure)));
                }
            }
        }
        Ok(Self {
            valid,
            refused,
            dead_lettered,
        })
    }

    /// Puts the refused messages' outcomes back among the appended ones, in
    /// request order.
    pub fn merge(self, appended: Vec<ProduceOutcome>) -> Vec<ProduceOutcome> {
        if self.refused.is_empty() {
            return appended;
        }
        let total = appended.len() + self.refused.len();
        let mut appended = appended.into_iter();
        let mut refused = self.refused.into_iter().peekable();
        (0..total)
            .filter_map(|index| match refused.peek() {
                Some((at, _)) if *at == index => refused
                    .next()
                    .map(|(_, reason)| ProduceOutcome::Rejected { reason }),
                _ => appended.next(),
            })
            .collect()
    }
}

pub(super) fn dead_letter(
    schema: &CompiledVersion,
    producer: &str,
    reason: &str,
    message: NewMessage,
) -> DeadLetterRecord {
    DeadLetterRecord {
        id: 0,
        timestamp_ms: now_ms(),
        reason: reason.to_owned(),
        schema: schema.schema.clone(),
        schema_version: schema.version,
        producer: producer.to_owned(),
        msg_id: message.msg_id.unwrap_or_default(),
        headers: headers_to_storage(message.headers),
        content_type: message.content_type,
        payload: message.payload,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ValidationFailure;

    #[test]
    fn merge_keeps_request_order() {
        let validated = Validated {
            valid: Vec::new(),
            refused: vec![
                (0, RejectReason::Invalid(ValidationFailure::single("a"))),
                (2, RejectReason::Invalid(ValidationFailure::single("b"))),
            ],
            dead_lettered: false,
        };
        let merged = validated.merge(vec![
            ProduceOutcome::Stored { offset: 7 },
            ProduceOutcome::Stored { offset: 8 },
        ]);
        assert!(matches!(merged[0], ProduceOutcome::Rejected { .. }));
        assert_eq!(merged[1], ProduceOutcome::Stored { offset: 7 });
        assert!(matches!(merged[2], ProduceOutcome::Rejected { .. }));
        assert_eq!(merged[3], ProduceOutcome::Stored { offset: 8 });
    }
}
