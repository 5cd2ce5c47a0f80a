//! Operational alerts: when a relayed request fails for good (a 4xx, or
//! every attempt used), operators hear of it twice: an error log line, and
//! a JSON webhook to `--alert-url`, signed like every delivery (Standard
//! Webhooks, with the relay subscription's secret).

use bytes::Bytes;
use serde_json::json;
use uuid::Uuid;

use crate::delivery::{
    WebhookSecret,
    sender::{MAX_RECORDED_BODY, OutgoingRequest},
};

/// A relayed request that will not arrive.
#[derive(Debug, Clone)]
pub struct RelayAlert {
    pub delivery_id: String,
    pub method: String,
    pub url: String,
    /// The destination's last status, when it answered.
    pub status: Option<u16>,
    pub error: String,
    /// The destination's last body (cut to 4 KiB).
    pub response: Bytes,
    pub attempts: u32,
}

impl RelayAlert {
    /// `depot.relay.rejected` (the destination refused it: a 4xx) or
    /// `depot.relay.failed` (every attempt used).
    pub fn kind(&self) -> &'static str {
        match self.status {
            Some(400..=499) if !matches!(self.status, Some(408 | 429)) => "depot.relay.rejected",
            _ => "depot.relay.failed",
        }
    }

    /// The log line, always written.
    pub fn log(&self) {
        tracing::error!(
            alert = self.kind(),
            delivery = %self.delivery_id,
            method = %self.method,
            url = %self.url,
            status = self.status,
            attempts = self.attempts,
            error = %self.error,
            "a relayed request will not arrive; it is a dead letter of subscription depot.relay"
        );
    }

    /// The webhook to the alert URL.
    pub fn request(&self, alert_url: &str, secret: &WebhookSecret) -> OutgoingRequest {
        let response = &self.response[..self.response.len().min(MAX_RECORDED_BODY)];
        let body = json!({
            "type": self.kind(),
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "delivery_id": self.delivery_id,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "error": (!self.error.is_empty()).then_some(&self.error),
            "response": String::from_utf8_lossy(response),
        });
        let body = Bytes::from(body.to_string());
        let id = Uuid::now_v7().to_string();
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        OutgoingRequest {
            method: awc::http::Method::POST,
            url: alert_url.to_owned(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "webhook-signature".into(),
                    secret.sign(&id, timestamp, &body),
                ),
                ("webhook-id".into(), id),
                ("webhook-timestamp".into(), timestamp.to_string()),
            ],
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: Option<u16>) -> RelayAlert {
        RelayAlert {
            delivery_id: "d-1".into(),
            method: "POST".into(),
            url: "https://example.com/x".into(),
            status,
            error: String::new(),
            response: Bytes::from_static(b"no such order"),
            attempts: 1,
        }
    }

    #[test]
    fn four_hundreds_are_rejections_and_the_rest_failures() {
        assert_eq!(alert(Some(400)).kind(), "depot.relay.rejected");
        assert_eq!(alert(Some(410)).kind(), "depot.relay.rejected");
        assert_eq!(alert(Some(429)).kind(), "depot.relay.failed");
        assert_eq!(alert(Some(503)).kind(), "depot.relay.failed");
        assert_eq!(alert(None).kind(), "depot.relay.failed");
    }

    #[test]
    fn the_alert_is_signed_json() {
        let secret = WebhookSecret::generate();
        let request = alert(Some(404)).request("https://ops.example.com/alerts", &secret);
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["type"], "depot.relay.rejected");
        assert_eq!(body["response"], "no such order");
        let header = |n: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .unwrap()
                .1
                .clone()
        };
        let timestamp: u64 = header("webhook-timestamp").parse().unwrap();
        assert_eq!(
            header("webhook-signature"),
            secret.sign(&header("webhook-id"), timestamp, &request.body)
        );
    }
}
