//! CloudEvents 1.0 for webhook bodies: the structured JSON format
//! (`application/cloudevents+json`, the default) and the HTTP binary mode
//! (`ce-*` headers around the raw payload).
//!
//! A stored message is one event: `id` is the message's id and `source` is
//! `/stations/<station>`, so (source, id) is unique and stays the same for
//! every subscription and every retry. `type` is `depot.message.published`
//! unless the message carries a `ce-type` header. Depot's extensions:
//! `depotstation`, `depotoffset`, `depotsubscription`.

use std::time::{Duration, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Map, Value, json};

use crate::{schema::validator::is_json, station::Message};

pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
pub const DEFAULT_TYPE: &str = "depot.message.published";
/// The message header that overrides the event type.
pub const TYPE_HEADER: &str = "ce-type";
const SPEC_VERSION: &str = "1.0";

/// The event attributes of one message, for one subscription.
struct Attributes<'a> {
    id: &'a str,
    source: String,
    kind: &'a str,
    time: String,
    content_type: &'a str,
    station: &'a str,
    offset: u64,
    subscription: &'a str,
}

impl<'a> Attributes<'a> {
    fn of(message: &'a Message, station: &'a str, subscription: &'a str) -> Self {
        let kind = message
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(TYPE_HEADER))
            .map_or(DEFAULT_TYPE, |(_, value)| value.as_str());
        let time = UNIX_EPOCH + Duration::from_millis(message.timestamp_ms);
        Self {
            id: &message.id,
            source: format!("/stations/{station}"),
            kind,
            time: humantime::format_rfc3339_millis(time).to_string(),
            content_type: &message.content_type,
            station,
            offset: message.offset,
            subscription,
        }
    }
}

/// The structured-mode body: one JSON object. JSON payloads are inline in
/// `data`; anything else (or JSON that does not parse) is `data_base64`.
pub fn structured(message: &Message, station: &str, subscription: &str) -> Vec<u8> {
    let a = Attributes::of(message, station, subscription);
    let mut event = Map::new();
    event.insert("specversion".into(), json!(SPEC_VERSION));
    event.insert("id".into(), json!(a.id));
    event.insert("source".into(), json!(a.source));
    event.insert("type".into(), json!(a.kind));
    event.insert("time".into(), json!(a.time));
    event.insert("depotstation".into(), json!(a.station));
    event.insert("depotoffset".into(), json!(a.offset));
    event.insert("depotsubscription".into(), json!(a.subscription));
    if !a.content_type.is_empty() {
        event.insert("datacontenttype".into(), json!(a.content_type));
    }
    let inline = is_json(a.content_type)
        .then(|| serde_json::from_slice::<Value>(&message.payload).ok())
        .flatten();
    match inline {
        Some(data) => event.insert("data".into(), data),
        None => event.insert(
            "data_base64".into(),
            json!(STANDARD.encode(&message.payload)),
        ),
    };
    serde_json::to_vec(&Value::Object(event)).expect("a JSON object serialises")
}

/// The binary-mode headers; the body is the raw payload and `Content-Type`
/// the message's content type.
pub fn binary_headers(
    message: &Message,
    station: &str,
    subscription: &str,
) -> Vec<(String, String)> {
    let a = Attributes::of(message, station, subscription);
    let mut headers = vec![
        ("ce-specversion".to_owned(), SPEC_VERSION.to_owned()),
        ("ce-id".to_owned(), header_value(a.id)),
        ("ce-source".to_owned(), header_value(&a.source)),
        ("ce-type".to_owned(), header_value(a.kind)),
        ("ce-time".to_owned(), a.time.clone()),
        ("ce-depotstation".to_owned(), header_value(a.station)),
        ("ce-depotoffset".to_owned(), a.offset.to_string()),
        (
            "ce-depotsubscription".to_owned(),
            header_value(a.subscription),
        ),
    ];
    if !a.content_type.is_empty() {
        headers.push(("content-type".to_owned(), a.content_type.to_owned()));
    }
    headers
}

/// Percent-encodes what the CloudEvents HTTP binding says must be: anything
/// outside printable ASCII, and `"` and `%` themselves.
fn header_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'%' || byte == b' ' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(content_type: &str, payload: &[u8], headers: &[(&str, &str)]) -> Message {
        Message {
            offset: 41,
            id: "01a20a13-74f2-7044-a548-b03376c382f6".into(),
            timestamp_ms: 1_795_465_532_034,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            content_type: content_type.into(),
            payload: payload.to_vec().into(),
            producer: "app".into(),
        }
    }

    #[test]
    fn json_payloads_are_inline_data() {
        let body = structured(
            &message("application/json", br#"{"n":1}"#, &[]),
            "orders",
            "billing",
        );
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], "01a20a13-74f2-7044-a548-b03376c382f6");
        assert_eq!(event["source"], "/stations/orders");
        assert_eq!(event["type"], DEFAULT_TYPE);
        assert_eq!(event["time"], "2026-11-23T20:25:32.034Z");
        assert_eq!(event["datacontenttype"], "application/json");
        assert_eq!(event["data"], json!({"n": 1}));
        assert_eq!(event["depotoffset"], 41);
        assert_eq!(event["depotsubscription"], "billing");
        assert!(event.get("data_base64").is_none());
    }

    #[test]
    fn other_payloads_are_base64_and_the_type_can_be_overridden() {
        let m = message(
            "application/x-protobuf",
            &[0, 159, 146],
            &[("ce-type", "shop.order.paid")],
        );
        let event: Value = serde_json::from_slice(&structured(&m, "orders", "billing")).unwrap();
        assert_eq!(event["data_base64"], "AJ+S");
        assert_eq!(event["type"], "shop.order.paid");
        // JSON content type but not JSON: still delivered, as base64.
        let broken = message("application/json", b"{oops", &[]);
        let event: Value = serde_json::from_slice(&structured(&broken, "s", "b")).unwrap();
        assert_eq!(event["data_base64"], STANDARD.encode(b"{oops"));
    }

    #[test]
    fn binary_mode_puts_attributes_in_headers() {
        let m = message("text/plain", b"hi", &[]);
        let headers = binary_headers(&m, "orders", "billing");
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ce-specversion"), Some("1.0"));
        assert_eq!(get("ce-source"), Some("/stations/orders"));
        assert_eq!(get("ce-depotoffset"), Some("41"));
        assert_eq!(get("content-type"), Some("text/plain"));
    }

    #[test]
    fn header_values_are_percent_encoded_where_the_binding_says() {
        assert_eq!(header_value("order 1"), "order 1");
        assert_eq!(header_value("é\"%\n"), "%C3%A9%22%25%0A");
    }
}
