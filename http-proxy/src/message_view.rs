//! How a stored message looks to the proxy's clients, the same in a
//! WebSocket push and an HTTP fetch: JSON payloads inline as `data`, any
//! other payload in base64 with `"encoding": "base64"`.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use depot_schemas::wire::StoredMessage;

pub fn stored_message(station: &str, message: &StoredMessage) -> Map<String, Value> {
    let headers: Map<String, Value> = message
        .headers
        .iter()
        .map(|h| (h.key.clone(), Value::String(h.value.clone())))
        .collect();
    let mut view = Map::new();
    view.insert("station".into(), station.into());
    view.insert("offset".into(), message.offset.into());
    view.insert("message_id".into(), message.id.clone().into());
    view.insert("timestamp_ms".into(), message.timestamp_ms.into());
    view.insert("headers".into(), Value::Object(headers));
    view.insert("content_type".into(), message.content_type.clone().into());
    let inline = message
        .content_type
        .starts_with("application/json")
        .then(|| serde_json::from_slice::<Value>(&message.payload).ok())
        .flatten();
    match inline {
        Some(data) => {
            view.insert("data".into(), data);
        }
        None => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&message.payload);
            view.insert("data".into(), encoded.into());
            view.insert("encoding".into(), json!("base64"));
        }
    }
    if message.deliveries > 0 {
        // A leased fetch's: how many times a lease handed it out.
        view.insert("deliveries".into(), message.deliveries.into());
    }
    view
}
