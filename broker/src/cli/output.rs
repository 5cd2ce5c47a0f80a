//! How the CLI prints: tables and readable lines for people, one JSON value
//! per line with `--json` for scripts.

use std::{fmt, io::Write, time::Duration};

use base64::Engine as _;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::{Purged, StationInfo, StoredMessage, UserInfo};

pub(super) use crate::views::time;
use crate::{cli::Context, views, views::last_offset};

/// Writes one line to stdout; a reader that went away ends the process.
pub fn line(text: fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// A JSON object as a two-column table of its non-null fields.
pub fn field_table(value: Value) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    if let Value::Object(fields) = value {
        for (key, value) in fields {
            let text = match value {
                Value::Null => continue,
                Value::String(s) => s,
                other => other.to_string(),
            };
            table.add_row(vec![key, text]);
        }
    }
    table
}

pub fn station(context: &Context, info: &StationInfo) {
    if context.json {
        outln!("{}", views::station(info));
        return;
    }
    let s = info.settings.unwrap_or_default();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let rows = [
        ("name", info.name.clone()),
        ("description", info.description.clone()),
        ("created", time(info.created_at_ms)),
        ("updated", time(info.updated_at_ms)),
        ("messages", info.message_count.to_string()),
        ("bytes", size(info.bytes)),
        ("first offset", info.first_offset.to_string()),
        (
            "last offset",
            last_offset(info).map_or("- (empty)".to_owned(), |o| o.to_string()),
        ),
        ("next offset", info.next_offset.to_string()),
        (
            "retention age",
            duration_or_unlimited(s.retention_age_ms.unwrap_or(0)),
        ),
        (
            "retention messages",
            count_or_unlimited(s.retention_messages.unwrap_or(0)),
        ),
        (
            "retention bytes",
            size_or_unlimited(s.retention_bytes.unwrap_or(0)),
        ),
        (
            "idempotency window",
            duration_or_unlimited(s.idempotency_window_ms.unwrap_or(0)),
        ),
        ("max message size", size(s.max_message_bytes.unwrap_or(0))),
        ("schema", attachment_text(info)),
        (
            "dead letters",
            if s.keep_dead_letters.unwrap_or(true) {
                format!(
                    "kept for {}",
                    duration_or_unlimited(s.dead_letter_retention_ms.unwrap_or(0))
                )
            } else {
                "dropped".to_owned()
            },
        ),
    ];
    for (key, value) in rows {
        table.add_row(vec![key.to_owned(), value]);
    }
    outln!("{table}");
}

pub fn station_list(context: &Context, stations: &[StationInfo]) {
    if context.json {
        outln!(
            "{}",
            Value::Array(stations.iter().map(views::station).collect())
        );
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "name",
        "messages",
        "bytes",
        "first",
        "last",
        "retention",
        "schema",
    ]);
    for info in stations {
        let s = info.settings.unwrap_or_default();
        table.add_row(vec![
            info.name.clone(),
            info.message_count.to_string(),
            size(info.bytes),
            info.first_offset.to_string(),
            last_offset(info).map_or("-".to_owned(), |o| o.to_string()),
            duration_or_unlimited(s.retention_age_ms.unwrap_or(0)),
            attachment_text(info),
        ]);
    }
    outln!("{table}");
}

pub fn user(context: &Context, user: &UserInfo) {
    if context.json {
        outln!("{}", views::user(user));
    } else {
        user_list(context, std::slice::from_ref(user));
    }
}

pub fn user_list(context: &Context, users: &[UserInfo]) {
    if context.json {
        outln!("{}", Value::Array(users.iter().map(views::user).collect()));
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "name",
        "produce",
        "consume",
        "create stations",
        "admin",
        "notify",
        "secrets",
    ]);
    for u in users {
        let p = u.permissions.clone().unwrap_or_default();
        let secrets: Vec<&str> = [
            (u.has_password, "password"),
            (u.has_connection_token, "connection token"),
        ]
        .into_iter()
        .filter_map(|(has, what)| has.then_some(what))
        .collect();
        table.add_row(vec![
            u.name.clone(),
            p.produce.join(", "),
            p.consume.join(", "),
            p.create_stations.to_string(),
            p.admin.to_string(),
            p.notify.to_string(),
            secrets.join(", "),
        ]);
    }
    outln!("{table}");
}

pub fn purged(context: &Context, station: &str, purged: &Purged) {
    if context.json {
        let fields = json!({ "removed": purged.removed, "first_offset": purged.first_offset });
        outln!("{fields}");
    } else {
        let noun = if purged.removed == 1 {
            "message"
        } else {
            "messages"
        };
        outln!(
            "purged {} {noun} from {station}; its oldest offset is now {}",
            purged.removed,
            purged.first_offset
        );
    }
}

pub fn done(context: &Context, what: &str) {
    if context.json {
        outln!("{}", json!({ "ok": true, "message": what }));
    } else {
        outln!("{what}");
    }
}

/// Payloads that are text (JSON, text/*) print as text; others as base64.
fn payload_text(message: &StoredMessage) -> Option<&str> {
    text_of(&message.content_type, &message.payload)
}

/// The payload as text when its content type is textual and it is UTF-8.
pub(super) fn text_of<'a>(content_type: &str, payload: &'a [u8]) -> Option<&'a str> {
    let textual = content_type.starts_with("text/") || content_type.starts_with("application/json");
    textual.then(|| std::str::from_utf8(payload).ok()).flatten()
}

pub fn message(context: &Context, message: &StoredMessage) {
    let headers: serde_json::Map<String, Value> = message
        .headers
        .iter()
        .map(|h| (h.key.clone(), Value::String(h.value.clone())))
        .collect();
    let text = payload_text(message);
    if context.json {
        let mut value = json!({
            "offset": message.offset,
            "id": message.id,
            "timestamp": time(message.timestamp_ms),
            "producer": message.producer,
            "content_type": message.content_type,
            "headers": headers,
        });
        match text {
            Some(text) => value["payload"] = Value::String(text.to_owned()),
            None => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(&message.payload);
                value["payload_base64"] = Value::String(encoded);
            }
        }
        if message.deliveries > 0 {
            value["deliveries"] = message.deliveries.into();
        }
        outln!("{value}");
        return;
    }
    let headers = if headers.is_empty() {
        String::new()
    } else {
        format!(" headers={}", Value::Object(headers))
    };
    // A leased fetch's message handed out before: say so.
    let again = match message.deliveries {
        0 | 1 => String::new(),
        n => format!(" deliveries={n}"),
    };
    outln!(
        "offset={}{again} time={} producer={} type={}{} id={}",
        message.offset,
        time(message.timestamp_ms),
        message.producer,
        if message.content_type.is_empty() {
            "-"
        } else {
            &message.content_type
        },
        headers,
        message.id,
    );
    match text {
        Some(text) => outln!("  {text}"),
        None => outln!(
            "  base64:{}",
            base64::engine::general_purpose::STANDARD.encode(&message.payload)
        ),
    }
}

/// `orders (v2)`, `orders (active)` or `-`.
fn attachment_text(info: &StationInfo) -> String {
    match &info.schema {
        None => "-".to_owned(),
        Some(a) if a.version == 0 => format!("{} (active version)", a.schema),
        Some(a) => format!("{} (v{})", a.schema, a.version),
    }
}

pub(super) fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

fn size_or_unlimited(bytes: u64) -> String {
    if bytes == 0 {
        "unlimited".into()
    } else {
        size(bytes)
    }
}

fn count_or_unlimited(count: u64) -> String {
    if count == 0 {
        "unlimited".into()
    } else {
        count.to_string()
    }
}

fn duration_or_unlimited(ms: u64) -> String {
    const DAY_MS: u64 = 24 * 3600 * 1000;
    match ms {
        0 => "unlimited".into(),
        // Whole days as days: humantime would print 90 days as
        // "2months 29days 2h 52m 48s" (its months are 30.44 days).
        ms if ms % DAY_MS == 0 && ms / DAY_MS > 1 => format!("{}days", ms / DAY_MS),
        ms => humantime::format_duration(Duration::from_millis(ms)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_whole_days_read_as_days() {
        assert_eq!(duration_or_unlimited(0), "unlimited");
        assert_eq!(duration_or_unlimited(90 * 24 * 3600 * 1000), "90days");
        assert_eq!(duration_or_unlimited(24 * 3600 * 1000), "1day");
        assert_eq!(duration_or_unlimited(90 * 60 * 1000), "1h 30m");
    }
}
