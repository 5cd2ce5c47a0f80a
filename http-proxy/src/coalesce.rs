//! [`ProduceCoalescer`]: single produces of one user to one station that
//! arrive on one HTTP worker in the same turn of its event loop go to the
//! broker together, in one call. Under load a worker reads many requests
//! per turn, and a call carries them all (one wire request, one station
//! actor message, one answer) instead of one each; alone, a request goes
//! after one yield.
//!
//! Why: a single produce's own HTTP work is small; the broker's per-call
//! work (decoding a wire request, permissions, the station actor's
//! mailbox, the answer) was as large again, and it is the same for one
//! message as for a hundred. Each message still gets its own outcome, in
//! the order the requests arrived; an error of the whole call (permission,
//! unknown station, broker unreachable) is every waiting request's error,
//! as they share the user and the station it depends on.
//!
//! Requests of one user may come with different tokens (sessions). A call
//! names the oldest of its sessions: if the broker refuses it (the user's
//! sessions were ended after it), nothing was stored, and the call goes
//! again as one call per session, so only the ended sessions' requests are
//! refused. Sessions end rarely, so calls keep carrying every token's
//! requests together.
//!
//! Calls never wait for each other: what arrives while a call waits for
//! its flush goes in the next call at once, so it is appended while that
//! flush runs and shares the next one (holding it back until the first
//! call's answer cost a tenth of the throughput: the appends then ran
//! after each flush instead of beside it).
//!
//! One coalescer per HTTP worker: its queues and the calls that drain them
//! run on that worker's thread, so schema validation (which an embedded
//! broker runs on the caller's thread) stays spread over the workers. A
//! call runs in a task of its own, so a client that goes away never leaves
//! a queue without a sender.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use futures::FutureExt;
use tokio::sync::oneshot;

use depot_schemas::wire::{ErrorCode, NewMessage, ProduceOutcome};

use crate::{
    broker_link::{Caller, LinkError, LinkResult, SharedLink},
    metrics::Metrics,
};

/// Most messages one coalesced call carries.
const MAX_MESSAGES: usize = 256;
/// Most payload bytes one coalesced call carries, unless the proxy's batch
/// limit is lower (a call is one wire frame, whose default limit is
/// 16 MiB); a single message larger than this goes alone.
const MAX_BYTES: usize = 4 << 20;

type Reply = oneshot::Sender<LinkResult<ProduceOutcome>>;

/// A message, the session it came in (its token's issue time), and where
/// its outcome goes.
struct Waiting {
    message: NewMessage,
    session_issued_at_ms: Option<u64>,
    reply: Reply,
}

/// A user and a station: what one call is made for.
type Key = (String, String);

/// Coalesces single produces on one HTTP worker; cheap to clone.
#[derive(Clone)]
pub struct ProduceCoalescer {
    link: SharedLink,
    /// The messages waiting for the next call of each key; a key is here
    /// only while a task is about to send its call.
    queues: Rc<RefCell<HashMap<Key, Vec<Waiting>>>>,
    /// Counts and times the calls made.
    metrics: Metrics,
    /// Most payload bytes in one call: [`MAX_BYTES`], or the largest batch
    /// body the proxy takes if that is less, so a coalesced call is never
    /// larger than a batch the broker must already accept.
    max_call_bytes: usize,
}

impl ProduceCoalescer {
    pub fn new(link: SharedLink, metrics: Metrics, max_batch_body: u64) -> Self {
        Self {
            link,
            queues: Rc::default(),
            metrics,
            max_call_bytes: MAX_BYTES.min(usize::try_from(max_batch_body).unwrap_or(usize::MAX)),
        }
    }

    /// Produces `message` as `caller` to `station`, with whatever else waits
    /// for the same call; resolves with this message's outcome.
    pub async fn produce(
        &self,
        caller: Caller,
        station: String,
        message: NewMessage,
    ) -> LinkResult<ProduceOutcome> {
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            message,
            session_issued_at_ms: caller.session_issued_at_ms,
            reply,
        };
        let key = (caller.user, station);
        let first = {
            let mut queues = self.queues.borrow_mut();
            match queues.get_mut(&key) {
                Some(queue) => {
                    queue.push(waiting);
                    false
                }
                None => {
                    // The key is copied only for a new queue, not per request.
                    queues.insert(key.clone(), vec![waiting]);
                    true
                }
            }
        };
        if first {
            actix_rt::spawn(self.clone().send_after_this_turn(key));
        }
        answer.await.unwrap_or_else(|_| {
            Err(LinkError::Unavailable(
                "the proxy is shutting down".to_owned(),
            ))
        })
    }

    /// Lets the worker read the other requests that are ready, then sends
    /// what waits for `key`, in as many calls as the limits need.
    async fn send_after_this_turn(self, key: Key) {
        tokio::task::yield_now().await;
        let waiting = self.queues.borrow_mut().remove(&key).unwrap_or_default();
        let calls = split_within_limits(waiting, self.max_call_bytes)
            .into_iter()
            .map(|call| self.send(&key, call))
            .collect::<Vec<_>>();
        futures::future::join_all(calls).await;
    }

    /// Sends one call and answers each of its messages; when the broker
    /// refuses the oldest session of several, sends it again per session.
    async fn send(&self, key: &Key, call: Vec<Waiting>) {
        let oldest = call.iter().filter_map(|w| w.session_issued_at_ms).min();
        let several_sessions = call
            .iter()
            .any(|w| w.session_issued_at_ms != call[0].session_issued_at_ms);
        let caller = Caller {
            user: key.0.clone(),
            session_issued_at_ms: oldest,
            // Produces are traffic, not audited.
            address: None,
        };
        let (messages, sessions_and_replies): (Vec<_>, Vec<_>) = call
            .into_iter()
            .map(|w| (w.message, (w.session_issued_at_ms, w.reply)))
            .unzip();
        let count = messages.len();
        let retry_per_session = several_sessions.then(|| messages.clone());
        let answered = self
            .metrics
            .produce_call(self.link.produce(caller, key.1.clone(), messages))
            .await;
        if let (Err(error), Some(messages)) = (&answered, retry_per_session)
            && is_ended_session(error)
        {
            return self
                .send_per_session(key, messages, sessions_and_replies)
                .await;
        }
        let replies: Vec<Reply> = sessions_and_replies.into_iter().map(|(_, r)| r).collect();
        match answered {
            Ok(outcomes) if outcomes.len() == count => {
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                let error = LinkError::Refused {
                    code: ErrorCode::Unspecified,
                    message: format!(
                        "the broker answered {} outcomes for {count} messages",
                        outcomes.len()
                    ),
                };
                answer_all(replies, &error);
            }
            Err(error) => answer_all(replies, &error),
        }
    }
}

impl ProduceCoalescer {
    /// A call refused for its oldest session, again as one call per
    /// session (in arrival order within each), each answered on its own.
    async fn send_per_session(
        &self,
        key: &Key,
        messages: Vec<NewMessage>,
        sessions_and_replies: Vec<(Option<u64>, Reply)>,
    ) {
        let mut per_session: Vec<(Option<u64>, Vec<Waiting>)> = Vec::new();
        for (message, (session_issued_at_ms, reply)) in
            messages.into_iter().zip(sessions_and_replies)
        {
            let waiting = Waiting {
                message,
                session_issued_at_ms,
                reply,
            };
            match per_session
                .iter_mut()
                .find(|(s, _)| *s == session_issued_at_ms)
            {
                Some((_, call)) => call.push(waiting),
                None => per_session.push((session_issued_at_ms, vec![waiting])),
            }
        }
        let calls = per_session
            .into_iter()
            .map(|(_, call)| self.send(key, call).boxed_local());
        futures::future::join_all(calls).await;
    }
}

/// Whether the broker refused a call because its session is over.
fn is_ended_session(error: &LinkError) -> bool {
    matches!(
        error,
        LinkError::Refused {
            code: ErrorCode::Unauthenticated,
            ..
        }
    )
}

/// Splits `waiting` into calls of at most [`MAX_MESSAGES`] messages and
/// `max_bytes` payload bytes (a larger message goes alone), oldest first.
fn split_within_limits(waiting: Vec<Waiting>, max_bytes: usize) -> Vec<Vec<Waiting>> {
    let mut calls: Vec<Vec<Waiting>> = Vec::new();
    let mut bytes = 0;
    for waiting in waiting {
        let size = waiting.message.payload.len();
        let full = calls
            .last()
            .is_none_or(|call| call.len() == MAX_MESSAGES || bytes + size > max_bytes);
        if full {
            calls.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        calls.last_mut().expect("a call was pushed").push(waiting);
    }
    calls
}

fn answer_all(replies: Vec<Reply>, error: &LinkError) {
    for reply in replies {
        let _ = reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(payload_bytes: &[usize]) -> Vec<Waiting> {
        payload_bytes
            .iter()
            .map(|&size| {
                let message = NewMessage {
                    payload: vec![0; size].into(),
                    ..Default::default()
                };
                Waiting {
                    message,
                    session_issued_at_ms: None,
                    reply: oneshot::channel().0,
                }
            })
            .collect()
    }

    fn sizes(calls: &[Vec<Waiting>]) -> Vec<Vec<usize>> {
        calls
            .iter()
            .map(|call| call.iter().map(|w| w.message.payload.len()).collect())
            .collect()
    }

    #[test]
    fn calls_stay_within_the_message_count() {
        let calls = split_within_limits(waiting(&[1; MAX_MESSAGES * 2 + 1]), MAX_BYTES);
        let counts: Vec<_> = calls.iter().map(Vec::len).collect();
        assert_eq!(counts, [MAX_MESSAGES, MAX_MESSAGES, 1]);
    }

    #[test]
    fn calls_stay_within_the_bytes_and_a_larger_message_goes_alone() {
        let half = MAX_BYTES / 2;
        let calls = split_within_limits(waiting(&[half, half, 1, MAX_BYTES + 1, 2]), MAX_BYTES);
        assert_eq!(
            sizes(&calls),
            [vec![half, half], vec![1], vec![MAX_BYTES + 1], vec![2]]
        );
        // A lower limit (the proxy's batch body) holds too.
        let calls = split_within_limits(waiting(&[600, 300, 600]), 1_000);
        assert_eq!(sizes(&calls), [vec![600, 300], vec![600]]);
    }
}
