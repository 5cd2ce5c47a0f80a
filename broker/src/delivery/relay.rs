//! The HTTP relay (seed 000): a request handed to Depot is tried at once and,
//! when its destination is unreachable or busy, kept and retried until it
//! arrives. Relayed requests are messages of the internal station
//! `depot.relay`, delivered by the ordinary delivery actor of the internal
//! subscription `depot.relay`: one engine, one set of records, retries,
//! dead letters and metrics.
//!
//! A relayed request travels as a message: the body is the payload, the
//! method and URL are the headers `relay-method` and `relay-url`, and each
//! header to forward is `relay-header-<name>`.
//!
//! The caller waits for the *first* attempt ([`RelayWaiters`]): its outcome
//! decides the answer (delivered, rejected by a 4xx, or queued for retries).

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{
    delivery::{
        retry::Verdict,
        sender::{AttemptRecord, OutgoingRequest},
    },
    station::{Message, NewMessage},
};

/// The internal station relayed requests are stored in, and the
/// subscription that delivers them.
pub const RELAY_STATION: &str = "depot.relay";
pub const RELAY_SUBSCRIPTION: &str = "depot.relay";
/// Station names with this prefix are Depot's own.
pub const RESERVED_PREFIX: &str = "depot.";

const METHOD: &str = "relay-method";
const URL: &str = "relay-url";
const HEADER_PREFIX: &str = "relay-header-";

/// Response bodies handed back to a relay's caller, at most (the attempt
/// records keep 4 KiB, like every delivery's).
pub const MAX_RELAYED_RESPONSE: usize = 1024 * 1024;

/// Methods a relay may use.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Headers a caller may not set on the relayed request: they belong to the
/// connection or to Depot's signature.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A request to relay.
#[derive(Debug, Clone)]
pub struct RelayRequest {
    /// Upper case (`POST`).
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Of the body; empty when there is none.
    pub content_type: String,
    pub body: Bytes,
}

impl RelayRequest {
    /// Checks the method and headers (the URL is the policy's business).
    pub fn validate(&mut self) -> Result<(), String> {
        self.method = self.method.to_ascii_uppercase();
        if !METHODS.contains(&self.method.as_str()) {
            return Err(format!(
                "method '{}' cannot be relayed: use one of {}",
                self.method,
                METHODS.join(", ")
            ));
        }
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower == "content-type" {
                return Err(format!(
                    "header '{name}' cannot be set on a relayed request"
                ));
            }
            let valid = awc::http::header::HeaderName::try_from(name.as_str()).is_ok()
                && awc::http::header::HeaderValue::try_from(value.as_str()).is_ok();
            if !valid {
                return Err(format!("header '{name}' is not a valid HTTP header"));
            }
        }
        Ok(())
    }

    /// The message that carries this request, with `msg_id` as its id.
    pub fn into_message(self, msg_id: String) -> NewMessage {
        let mut headers = vec![(METHOD.to_owned(), self.method), (URL.to_owned(), self.url)];
        headers.extend(self.headers.into_iter().map(|(name, value)| {
            (
                format!("{HEADER_PREFIX}{}", name.to_ascii_lowercase()),
                value,
            )
        }));
        NewMessage {
            msg_id: Some(msg_id),
            headers,
            content_type: self.content_type,
            payload: self.body,
        }
    }
}

/// The request a relay message stands for.
pub fn relay_request(message: &Message) -> Result<OutgoingRequest, String> {
    let header = |name: &str| {
        message
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let method = header(METHOD).ok_or("not a relayed request: no relay-method header")?;
    let url = header(URL).ok_or("not a relayed request: no relay-url header")?;
    let method = awc::http::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("invalid relay method '{method}'"))?;
    let mut headers: Vec<(String, String)> = message
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(HEADER_PREFIX)?.to_owned(), v.clone())))
        .collect();
    if !message.content_type.is_empty() && !message.payload.is_empty() {
        headers.push(("content-type".to_owned(), message.content_type.clone()));
    }
    Ok(OutgoingRequest {
        method,
        url: url.to_owned(),
        headers,
        body: message.payload.clone(),
    })
}

/// What the first attempt of a relayed request did.
#[derive(Debug, Clone)]
pub struct RelayOutcome {
    pub delivery_id: String,
    pub verdict: RelayVerdict,
    /// The destination's status, when it answered.
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Bytes,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayVerdict {
    /// 2xx.
    Delivered,
    /// 4xx other than 408 and 429 (or a destination Depot may not call):
    /// not retried, a dead letter, an alert.
    Rejected,
    /// Unreachable, timed out, 408, 429, 5xx: kept and retried.
    Queued,
}

impl RelayOutcome {
    pub fn of_attempt(delivery_id: &str, attempt: &AttemptRecord) -> Self {
        Self {
            delivery_id: delivery_id.to_owned(),
            verdict: match attempt.verdict {
                Verdict::Delivered => RelayVerdict::Delivered,
                Verdict::Permanent => RelayVerdict::Rejected,
                Verdict::Retry { .. } => RelayVerdict::Queued,
            },
            status: attempt.status,
            response_headers: attempt.response_headers.clone(),
            response_body: attempt.response_body.clone(),
            error: attempt.error.clone(),
        }
    }

    /// The caller stopped waiting before the first attempt ended.
    pub fn still_queued(delivery_id: String) -> Self {
        Self {
            delivery_id,
            verdict: RelayVerdict::Queued,
            status: None,
            response_headers: Vec::new(),
            response_body: Bytes::new(),
            error: None,
        }
    }
}

/// Callers waiting for the first attempt of their relayed request, by the
/// request's message id (known before it is stored, so the delivery actor
/// can never finish before the waiter is there).
#[derive(Default)]
pub struct RelayWaiters {
    waiting: Mutex<HashMap<String, oneshot::Sender<RelayOutcome>>>,
}

impl RelayWaiters {
    pub fn register(&self, message_id: &str) -> oneshot::Receiver<RelayOutcome> {
        let (sender, receiver) = oneshot::channel();
        self.waiting.lock().insert(message_id.to_owned(), sender);
        receiver
    }

    /// Hands the outcome to the waiting caller, if one still waits.
    pub fn settle(&self, message_id: &str, outcome: impl FnOnce() -> RelayOutcome) {
        if let Some(waiter) = self.waiting.lock().remove(message_id) {
            let _ = waiter.send(outcome());
        }
    }

    pub fn forget(&self, message_id: &str) {
        self.waiting.lock().remove(message_id);
    }
}

/// How long a relay's caller waits for the first attempt: the attempt's
/// timeout and some room for the queue ahead of it.
pub fn first_attempt_patience(attempt_timeout: Duration) -> Duration {
    attempt_timeout + Duration::from_secs(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RelayRequest {
        RelayRequest {
            method: "put".into(),
            url: "https://example.com/orders/7".into(),
            headers: vec![("X-Trace".into(), "abc".into())],
            content_type: "application/json".into(),
            body: Bytes::from_static(b"{\"n\":1}"),
        }
    }

    #[test]
    fn a_request_survives_the_trip_through_a_message() {
        let mut relay = request();
        relay.validate().unwrap();
        let new = relay.into_message("m-1".into());
        let message = Message {
            offset: 0,
            id: new.msg_id.clone().unwrap(),
            timestamp_ms: 0,
            headers: new.headers,
            content_type: new.content_type,
            payload: new.payload,
            producer: "root".into(),
        };
        let outgoing = relay_request(&message).unwrap();
        assert_eq!(outgoing.method, awc::http::Method::PUT);
        assert_eq!(outgoing.url, "https://example.com/orders/7");
        assert_eq!(outgoing.body, Bytes::from_static(b"{\"n\":1}"));
        assert!(outgoing.headers.contains(&("x-trace".into(), "abc".into())));
        assert!(
            outgoing
                .headers
                .contains(&("content-type".into(), "application/json".into()))
        );
    }

    #[test]
    fn bad_methods_and_reserved_headers_are_refused() {
        let mut bad = request();
        bad.method = "CONNECT".into();
        assert!(bad.validate().unwrap_err().contains("CONNECT"));
        for name in ["Host", "webhook-signature", "Content-Type", "bad header"] {
            let mut bad = request();
            bad.headers = vec![(name.into(), "x".into())];
            assert!(bad.validate().is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn a_message_that_is_not_a_relay_is_refused() {
        let message = Message {
            offset: 0,
            id: "m".into(),
            timestamp_ms: 0,
            headers: vec![],
            content_type: String::new(),
            payload: Bytes::new(),
            producer: "root".into(),
        };
        assert!(
            relay_request(&message)
                .unwrap_err()
                .contains("relay-method")
        );
    }

    #[test]
    fn waiters_get_the_outcome_once() {
        let waiters = RelayWaiters::default();
        let mut receiver = waiters.register("m-1");
        waiters.settle("m-1", || RelayOutcome::still_queued("d-1".into()));
        waiters.settle("m-1", || unreachable!("settled twice"));
        assert_eq!(receiver.try_recv().unwrap().delivery_id, "d-1");
    }
}
