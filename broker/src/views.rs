//! JSON views of the broker's records for people's scripts: the CLI's
//! `--json` and the HTTP proxy's station and user routes print the same
//! shape, so a record looks alike whichever a script asks.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use depot_schemas::wire::{ConsumerInfo, DeadLetter, StationInfo, UserInfo};

/// A time in milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The newest stored message's offset; `None` when the station is empty.
pub fn last_offset(info: &StationInfo) -> Option<u64> {
    (info.message_count > 0).then(|| info.next_offset - 1)
}

/// A station's settings (durations in milliseconds, sizes in bytes, 0 for
/// an unlimited retention), its counters and its schema.
pub fn station(info: &StationInfo) -> Value {
    let s = info.settings.unwrap_or_default();
    json!({
        "name": info.name,
        "settings": {
            "retention_age_ms": s.retention_age_ms.unwrap_or(0),
            "retention_messages": s.retention_messages.unwrap_or(0),
            "retention_bytes": s.retention_bytes.unwrap_or(0),
            "idempotency_window_ms": s.idempotency_window_ms.unwrap_or(0),
            "max_message_bytes": s.max_message_bytes.unwrap_or(0),
            "dead_letter_retention_ms": s.dead_letter_retention_ms.unwrap_or(0),
            "keep_dead_letters": s.keep_dead_letters.unwrap_or(true),
            "notify_connections": s.notify_connections.unwrap_or(false),
        },
        "description": info.description,
        "created_at": time(info.created_at_ms),
        "updated_at": time(info.updated_at_ms),
        "message_count": info.message_count,
        "bytes": info.bytes,
        "first_offset": info.first_offset,
        "last_offset": last_offset(info),
        "next_offset": info.next_offset,
        "schema": info.schema.as_ref().map(|a| json!({
            "name": a.schema,
            "version": (a.version != 0).then_some(a.version),
        })),
    })
}

/// A user: permissions, which secrets it has (never the secrets) and when
/// it was created.
pub fn user(u: &UserInfo) -> Value {
    let p = u.permissions.clone().unwrap_or_default();
    json!({
        "name": u.name,
        "produce": p.produce,
        "consume": p.consume,
        "create_stations": p.create_stations,
        "notify": p.notify,
        "admin": p.admin,
        "has_password": u.has_password,
        "has_connection_token": u.has_connection_token,
        "created_at": time(u.created_at_ms),
    })
}

/// A consumer's position in a station, and how far behind it is.
pub fn consumer(c: &ConsumerInfo) -> Value {
    json!({
        "station": c.station,
        "consumer": c.consumer,
        "next_offset": c.next_offset,
        "lag": c.lag,
        "updated_at": time(c.updated_at_ms),
        "updated_by": c.updated_by,
        "leased": c.leased,
        "acknowledged_ahead": c.acknowledged_ahead,
        "redeliveries": c.redeliveries,
        "dead_lettered": c.dead_lettered,
    })
}

/// Adds to a dead letter's JSON whose it is when a consumer's workers never
/// acknowledged it (`max_deliveries`): the `consumer`, the message's
/// `offset` and its `deliveries`. A schema's refusal has none.
pub fn add_poison_fields(letter: &DeadLetter, value: &mut Value) {
    if !letter.consumer.is_empty() {
        value["consumer"] = json!(letter.consumer);
        value["offset"] = json!(letter.offset);
        value["deliveries"] = json!(letter.deliveries);
    }
}
