//! The WebSocket protocol: JSON text frames routed by their `action` key
//! (the seed's API Gateway routes, with its `$default` answer for anything
//! else), and the frames the server sends.
//!
//! Every reply echoes the request's `id` when it had one, so a client can
//! match answers to requests.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use depot_schemas::wire::StoredMessage;

/// Where a subscription starts: where a station follow does.
pub use crate::broker_link::FollowFrom as From;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Echoed back as `pong` with every other field.
    Ping(Map<String, Value>),
    Authorize {
        token: String,
    },
    Subscribe {
        station: String,
        from: From,
        filter: Vec<(String, String)>,
    },
    Unsubscribe {
        station: String,
    },
    /// Sets a consumer's position (see `depot_broker::station::positions`).
    Commit {
        station: String,
        consumer: String,
        next_offset: u64,
    },
    Produce {
        station: String,
        content_type: &'static str,
        payload: Vec<u8>,
        headers: Vec<(String, String)>,
    },
    /// Any other action: the default route.
    Unknown(String),
}

/// A frame that could not be understood, and why.
pub type Refusal = String;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeFields {
    station: String,
    #[serde(default)]
    from: Option<Value>,
    /// Instead of `from`: start at this consumer's position.
    #[serde(default)]
    consumer: Option<String>,
    #[serde(default)]
    filter: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitFields {
    station: String,
    consumer: String,
    next_offset: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceFields {
    station: String,
    data: Value,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

/// Parses one text frame: the action and the request id (if any).
pub fn parse(text: &str) -> Result<(Action, Option<Value>), (Refusal, Option<Value>)> {
    let mut object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err((
                "a frame must be a JSON object with an \"action\"".into(),
                None,
            ));
        }
        Err(e) => return Err((format!("malformed JSON: {e}"), None)),
    };
    let id = object.remove("id");
    let refuse = |reason: String| (reason, id.clone());
    let action = match object.remove("action") {
        Some(Value::String(action)) => action,
        Some(_) => return Err(refuse("\"action\" must be a string".into())),
        None => return Err(refuse("the frame has no \"action\"".into())),
    };
    let fields = Value::Object(object.clone());
    let action = match action.as_str() {
        "ping" => Action::Ping(object),
        "authorize" => match object.remove("token") {
            Some(Value::String(token)) => Action::Authorize { token },
            _ => return Err(refuse("authorize needs a \"token\" string".into())),
        },
        "subscribe" => {
            let fields: SubscribeFields =
                serde_json::from_value(fields).map_err(|e| refuse(format!("subscribe: {e}")))?;
            let from = match (fields.from, fields.consumer) {
                (Some(_), Some(_)) => {
                    return Err(refuse(
                        "subscribe: give \"from\" or \"consumer\", not both".into(),
                    ));
                }
                (None, Some(consumer)) => From::Consumer(consumer),
                (None, None) => From::Latest,
                (Some(Value::String(s)), None) if s == "latest" => From::Latest,
                (Some(Value::Number(n)), None) if n.as_u64().is_some() => {
                    From::Offset(n.as_u64().expect("checked"))
                }
                (Some(other), None) => {
                    return Err(refuse(format!(
                        "subscribe: \"from\" is \"latest\" or an offset, not {other}"
                    )));
                }
            };
            Action::Subscribe {
                station: fields.station,
                from,
                filter: fields.filter.into_iter().collect(),
            }
        }
        "commit" => {
            let fields: CommitFields =
                serde_json::from_value(fields).map_err(|e| refuse(format!("commit: {e}")))?;
            Action::Commit {
                station: fields.station,
                consumer: fields.consumer,
                next_offset: fields.next_offset,
            }
        }
        "unsubscribe" => match object.remove("station") {
            Some(Value::String(station)) => Action::Unsubscribe { station },
            _ => return Err(refuse("unsubscribe needs a \"station\" string".into())),
        },
        "produce" => {
            let fields: ProduceFields =
                serde_json::from_value(fields).map_err(|e| refuse(format!("produce: {e}")))?;
            let (content_type, payload) = match fields.data {
                Value::String(text) => ("text/plain", text.into_bytes()),
                value => ("application/json", value.to_string().into_bytes()),
            };
            Action::Produce {
                station: fields.station,
                content_type,
                payload,
                headers: fields.headers.into_iter().collect(),
            }
        }
        other => Action::Unknown(other.to_owned()),
    };
    Ok((action, id))
}

/// Adds the request's id to a reply.
pub fn with_id(mut reply: Value, id: &Option<Value>) -> Value {
    if let (Some(id), Value::Object(object)) = (id, &mut reply) {
        object.insert("id".into(), id.clone());
    }
    reply
}

pub fn error(message: impl Into<String>) -> Value {
    json!({ "action": "error", "error": message.into() })
}

/// `pong`, echoing the ping's other fields (the seed's example).
pub fn pong(mut fields: Map<String, Value>) -> Value {
    fields.insert("action".into(), Value::String("pong".into()));
    Value::Object(fields)
}

/// A pushed message ([`crate::message_view`]), as an action.
pub fn message(station: &str, message: &StoredMessage) -> Value {
    let mut frame = Map::new();
    frame.insert("action".into(), Value::String("message".into()));
    frame.extend(crate::message_view::stored_message(station, message));
    Value::Object(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_routed_by_their_key() {
        let (action, id) = parse(r#"{"action":"ping","name":"Stepan","id":7}"#).unwrap();
        assert_eq!(id, Some(json!(7)));
        let Action::Ping(fields) = action else {
            panic!("{action:?}")
        };
        assert_eq!(pong(fields), json!({"action": "pong", "name": "Stepan"}));
        let (action, _) =
            parse(r#"{"action":"subscribe","station":"orders","from":5,"filter":{"kind":"paid"}}"#)
                .unwrap();
        assert_eq!(
            action,
            Action::Subscribe {
                station: "orders".into(),
                from: From::Offset(5),
                filter: vec![("kind".into(), "paid".into())],
            }
        );
        let (action, _) = parse(r#"{"action":"produce","station":"s","data":{"a":1}}"#).unwrap();
        let Action::Produce {
            content_type,
            payload,
            ..
        } = action
        else {
            panic!()
        };
        assert_eq!(
            (content_type, payload.as_slice()),
            ("application/json", &b"{\"a\":1}"[..])
        );
        let (action, _) = parse(r#"{"action":"dance"}"#).unwrap();
        assert_eq!(action, Action::Unknown("dance".into()));
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason_and_the_id() {
        assert!(parse("{nope").unwrap_err().0.contains("malformed JSON"));
        assert!(parse("[1]").unwrap_err().0.contains("JSON object"));
        let (reason, id) = parse(r#"{"id":"x","station":"s"}"#).unwrap_err();
        assert!(reason.contains("no \"action\""));
        assert_eq!(id, Some(json!("x")));
        let (reason, _) =
            parse(r#"{"action":"subscribe","station":"s","from":"soon"}"#).unwrap_err();
        assert!(reason.contains("\"latest\" or an offset"), "{reason}");
        assert!(
            parse(r#"{"action":"subscribe"}"#)
                .unwrap_err()
                .0
                .contains("station")
        );
    }

    #[test]
    fn pushed_messages_inline_json_and_encode_the_rest() {
        let json_message = StoredMessage {
            offset: 3,
            content_type: "application/json".into(),
            payload: b"{\"n\":1}".to_vec().into(),
            ..Default::default()
        };
        assert_eq!(message("s", &json_message)["data"], json!({"n": 1}));
        let text = StoredMessage {
            content_type: "text/plain".into(),
            payload: b"hi".to_vec().into(),
            ..Default::default()
        };
        let frame = message("s", &text);
        assert_eq!(frame["data"], "aGk=");
        assert_eq!(frame["encoding"], "base64");
    }
}
