//! How `depot subscriptions deliveries|delivery|attempt` print webhook
//! deliveries and their attempts.

use base64::Engine as _;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::{self, DeliveryAttempt, DeliveryDetail};

use crate::cli::{
    CliResult, Context,
    output::{self, time},
};

/// Text when it is UTF-8; base64 otherwise (field names say which).
fn bytes_json(name: &str, bytes: &[u8]) -> (String, Value) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (name.to_owned(), Value::String(text.to_owned())),
        Err(_) => (
            format!("{name}_base64"),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

fn headers_json(headers: &[wire::Header]) -> Value {
    headers
        .iter()
        .map(|h| (h.key.clone(), Value::String(h.value.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn delivery_json(d: &wire::Delivery) -> Value {
    json!({
        "id": d.id, "subscription_id": d.subscription_id, "offset": d.offset,
        "message_id": d.message_id, "status": d.status, "attempts": d.attempts,
        "next_attempt_at": (d.status == "pending").then(|| time(d.next_attempt_at_ms)),
        "created_at": time(d.created_at_ms), "updated_at": time(d.updated_at_ms),
        "last_status": (d.last_status > 0).then_some(d.last_status),
        "last_error": (!d.last_error.is_empty()).then_some(&d.last_error),
    })
}

fn attempt_json(a: &DeliveryAttempt) -> Value {
    let mut value = json!({
        "id": a.id, "delivery_id": a.delivery_id, "number": a.number, "at": time(a.at_ms),
        "request_line": a.request_line, "request_headers": headers_json(&a.request_headers),
        "response_status": (a.response_status > 0).then_some(a.response_status),
        "response_headers": headers_json(&a.response_headers),
        "duration_ms": a.duration_ms, "success": a.success,
        "error": (!a.error.is_empty()).then_some(&a.error),
    });
    let (key, body) = bytes_json("response_body", &a.response_body);
    value[key] = body;
    value
}

pub async fn list(context: &Context, list: wire::ListDeliveries) -> CliResult {
    let list = context.client.list_deliveries(list).await?;
    if context.json {
        let all: Vec<Value> = list.deliveries.iter().map(delivery_json).collect();
        outln!("{}", Value::Array(all));
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "offset",
        "status",
        "attempts",
        "last status",
        "last error",
        "id",
    ]);
    for d in &list.deliveries {
        table.add_row(vec![
            d.offset.to_string(),
            d.status.clone(),
            d.attempts.to_string(),
            status_text(d.last_status),
            d.last_error.clone(),
            d.id.clone(),
        ]);
    }
    outln!("{table}");
    if let (true, Some(last)) = (list.more, list.deliveries.last()) {
        outln!("More follow: --after {}", last.id);
    }
    Ok(())
}

fn status_text(status: u32) -> String {
    if status > 0 {
        status.to_string()
    } else {
        "-".into()
    }
}

pub fn show_delivery(context: &Context, detail: &DeliveryDetail) {
    let summary = detail.delivery.clone().unwrap_or_default();
    let mut value = delivery_json(&summary);
    value["subscription"] = detail.subscription_name.clone().into();
    value["station"] = detail.station.clone().into();
    value["url"] = detail.url.clone().into();
    value["max_attempts"] = detail.max_attempts.into();
    value["content_type"] = detail.content_type.clone().into();
    if detail.message_retained {
        let (key, data) = bytes_json("data", &detail.data);
        value[key] = data;
    }
    if context.json {
        value["attempt_list"] = detail.attempts.iter().map(attempt_json).collect();
        outln!("{value}");
        return;
    }
    outln!("{}", output::field_table(value));
    let mut attempts = Table::new();
    attempts.load_preset(UTF8_FULL_CONDENSED);
    attempts.set_header(vec!["attempt", "at", "status", "ms", "error", "id"]);
    for a in &detail.attempts {
        attempts.add_row(vec![
            a.number.to_string(),
            time(a.at_ms),
            status_text(a.response_status),
            a.duration_ms.to_string(),
            a.error.clone(),
            a.id.clone(),
        ]);
    }
    outln!("{attempts}");
}

pub fn show_attempt(context: &Context, attempt: &DeliveryAttempt) {
    if context.json {
        outln!("{}", attempt_json(attempt));
        return;
    }
    outln!(
        "attempt {} of delivery {}",
        attempt.number,
        attempt.delivery_id
    );
    outln!("at {} ({} ms)", time(attempt.at_ms), attempt.duration_ms);
    outln!("");
    outln!("{}", attempt.request_line);
    for h in &attempt.request_headers {
        outln!("{}: {}", h.key, h.value);
    }
    outln!("");
    if attempt.response_status > 0 {
        outln!("HTTP {}", attempt.response_status);
        for h in &attempt.response_headers {
            outln!("{}: {}", h.key, h.value);
        }
        outln!("");
        outln!("{}", String::from_utf8_lossy(&attempt.response_body));
    }
    if !attempt.error.is_empty() {
        outln!("error: {}", attempt.error);
    }
}
