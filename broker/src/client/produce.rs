//! Producing through [`BrokerClient`], within the broker's frame limit.
//!
//! A produce is one `Produce` request unless its encoded size passes the
//! largest frame the broker reads (its `HelloOk` says which). Then it goes
//! as several requests, one after another on this connection, so its
//! messages are still stored in their order (another producer's may land
//! between the parts), and the outcomes come back as one list. A message
//! too large for any frame is not sent: its outcome is a
//! `MESSAGE_TOO_LARGE` error and the others go on. If the connection fails
//! between parts, the call fails although earlier parts may be stored: the
//! same at-least-once as any produce whose answer is lost (`msg-id`s make
//! a retry safe).
//!
//! Why: the broker closes a connection that sends a frame over its limit
//! (the framing is lost), failing every call in flight on it. A batch the
//! HTTP proxy accepts (16 MiB of body, per-message fields on top) made
//! such a frame with the default limits.

use std::sync::atomic::Ordering;

use prost::Message;

use depot_schemas::wire::{self, ErrorCode, NewMessage, ProduceOutcome, produce_outcome::Outcome};

use super::{ActingFor, BrokerClient, ClientResult, Op, Reply, unexpected};

/// What a `Request` adds around its `Produce`, at most: the id field (tag
/// and a 10-byte varint), the op field's tag and 5-byte length, and the
/// session time (a 2-byte tag and a 10-byte varint).
const REQUEST_OVERHEAD: usize = 1 + 10 + 1 + 5 + 2 + 10;

/// A produce cut to the frame limit, in order.
#[derive(Debug, PartialEq)]
enum Part {
    /// Messages that go in one request.
    Send(Vec<NewMessage>),
    /// A message no frame can carry, with its encoded size.
    TooLarge(usize),
}

impl BrokerClient {
    /// Produces messages; one outcome per message, in order.
    pub async fn produce(
        &self,
        station: &str,
        messages: Vec<NewMessage>,
    ) -> ClientResult<Vec<ProduceOutcome>> {
        self.start_produce(station, messages).await?.await
    }

    /// Sends a produce and returns the wait for its outcomes; produces
    /// started in sequence are stored in that order.
    pub async fn start_produce(
        &self,
        station: &str,
        messages: Vec<NewMessage>,
    ) -> ClientResult<impl Future<Output = ClientResult<Vec<ProduceOutcome>>> + use<>> {
        self.start_produce_as(station, messages, ActingFor::default())
            .await
    }

    /// [`BrokerClient::start_produce`] for another user (see
    /// [`ActingFor`]: needs an administrator's connection; `""` means the
    /// connection's own user).
    pub async fn start_produce_as(
        &self,
        station: &str,
        messages: Vec<NewMessage>,
        acting_for: ActingFor<'_>,
    ) -> ClientResult<impl Future<Output = ClientResult<Vec<ProduceOutcome>>> + use<>> {
        // Produces are traffic, not audited: no client address.
        let ActingFor {
            user: on_behalf_of,
            session_issued_at_ms,
            ..
        } = acting_for;
        let max_frame = self.shared.max_frame.load(Ordering::Relaxed);
        let mut answers = Vec::new();
        for part in split_for_frames(station, on_behalf_of, messages, max_frame) {
            answers.push(match part {
                Part::Send(messages) => {
                    let op = Op::Produce(wire::Produce {
                        station: station.to_owned(),
                        messages,
                        on_behalf_of: on_behalf_of.to_owned(),
                    });
                    Ok(self.start_in_session(op, session_issued_at_ms).await?)
                }
                Part::TooLarge(size) => Err(too_large(size, max_frame)),
            });
        }
        Ok(async move {
            let mut outcomes = Vec::new();
            for answer in answers {
                match answer {
                    Ok(answer) => match answer.await? {
                        Reply::ProduceResult(result) => outcomes.extend(result.outcomes),
                        other => return Err(unexpected(other)),
                    },
                    Err(refused) => outcomes.push(refused),
                }
            }
            Ok(outcomes)
        })
    }
}

/// `messages` as requests that each fit in `max_frame` bytes: all in one
/// when they fit (nearly always; sizes are only added up), otherwise as
/// many as needed, in order.
fn split_for_frames(
    station: &str,
    on_behalf_of: &str,
    messages: Vec<NewMessage>,
    max_frame: usize,
) -> Vec<Part> {
    let empty = wire::Produce {
        station: station.to_owned(),
        messages: Vec::new(),
        on_behalf_of: on_behalf_of.to_owned(),
    };
    let room = max_frame.saturating_sub(REQUEST_OVERHEAD + empty.encoded_len());
    if messages.iter().map(field_size).sum::<usize>() <= room {
        return vec![Part::Send(messages)];
    }
    let mut parts = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for message in messages {
        let size = field_size(&message);
        if size > room {
            if !current.is_empty() {
                parts.push(Part::Send(std::mem::take(&mut current)));
                used = 0;
            }
            parts.push(Part::TooLarge(size));
            continue;
        }
        if used + size > room {
            parts.push(Part::Send(std::mem::take(&mut current)));
            used = 0;
        }
        used += size;
        current.push(message);
    }
    if !current.is_empty() {
        parts.push(Part::Send(current));
    }
    parts
}

/// A message's size inside a `Produce`: its field tag, length and body.
fn field_size(message: &NewMessage) -> usize {
    prost::encoding::message::encoded_len(2, message)
}

fn too_large(size: usize, max_frame: usize) -> ProduceOutcome {
    ProduceOutcome {
        outcome: Some(Outcome::Error(wire::Error {
            code: ErrorCode::MessageTooLarge as i32,
            message: format!(
                "the message takes {size} bytes, more than one frame of the broker carries ({max_frame} bytes, its --max-frame)"
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload_bytes: usize) -> NewMessage {
        NewMessage {
            payload: vec![b'x'; payload_bytes].into(),
            content_type: "application/json".into(),
            ..Default::default()
        }
    }

    fn shape(parts: &[Part]) -> Vec<Vec<usize>> {
        parts
            .iter()
            .map(|part| match part {
                Part::Send(messages) => messages.iter().map(|m| m.payload.len()).collect(),
                Part::TooLarge(_) => vec![0],
            })
            .collect()
    }

    /// The encoded size of the request a part becomes, as the broker
    /// measures its frames.
    fn request_size(messages: &[NewMessage]) -> usize {
        wire::Request {
            id: u64::MAX,
            op: Some(Op::Produce(wire::Produce {
                station: "s".into(),
                messages: messages.to_vec(),
                on_behalf_of: "someone".into(),
            })),
            on_behalf_of: String::new(),
            session_issued_at_ms: u64::MAX,
            // Produces send none.
            client_address: String::new(),
        }
        .encoded_len()
    }

    #[test]
    fn what_fits_goes_in_one_request() {
        let messages = vec![message(100); 3];
        let parts = split_for_frames("s", "someone", messages.clone(), 1 << 20);
        assert_eq!(parts, [Part::Send(messages)]);
    }

    #[test]
    fn a_produce_over_the_limit_is_cut_in_order_and_each_request_fits() {
        let max_frame = 1_000;
        let messages: Vec<_> = (1..=12).map(|n| message(100 + n)).collect();
        let parts = split_for_frames("s", "someone", messages, max_frame);
        assert!(parts.len() > 1, "cut: {:?}", shape(&parts));
        let mut sizes = Vec::new();
        for part in &parts {
            let Part::Send(messages) = part else {
                panic!("nothing here is too large: {:?}", shape(&parts));
            };
            assert!(request_size(messages) <= max_frame);
            sizes.extend(messages.iter().map(|m| m.payload.len()));
        }
        assert_eq!(sizes, (101..=112).collect::<Vec<_>>(), "all, in order");
    }

    #[test]
    fn a_message_no_frame_carries_is_refused_in_its_place() {
        let messages = vec![message(10), message(5_000), message(20)];
        let parts = split_for_frames("s", "", messages, 1_000);
        assert_eq!(shape(&parts), [vec![10], vec![0], vec![20]]);
        let outcome = too_large(5_010, 1_000);
        let Some(Outcome::Error(error)) = outcome.outcome else {
            panic!("an error outcome");
        };
        assert_eq!(error.code, ErrorCode::MessageTooLarge as i32);
        assert!(error.message.contains("--max-frame"), "{}", error.message);
    }
}
