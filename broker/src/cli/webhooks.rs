//! `depot subscriptions ...`: webhook subscriptions and their deliveries.

use clap::{Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::{self, SubscriptionInfo, create_subscription::Start};

use crate::{
    cli::{
        CliResult, Context,
        output::{self, time},
    },
    config::parse_duration,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Cloudevents,
    CloudeventsBinary,
    Raw,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Mode {
    /// One delivery at a time, in offset order.
    Ordered,
    /// Up to --concurrency deliveries in flight.
    Concurrent,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    Pending,
    Completed,
    Failed,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Push a station's messages to a URL (signed, retried).
    Create {
        name: String,
        #[arg(long)]
        station: String,
        #[arg(long)]
        url: String,
        /// whsec_...; generated (and printed once) when not given.
        #[arg(long)]
        secret: Option<String>,
        /// Delays before attempts 1, 2, ... (0s,5s,30s,...) or fixed:60s.
        #[arg(long)]
        retry_schedule: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Per attempt (e.g. 15s).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(long, value_enum, default_value = "concurrent")]
        mode: Mode,
        /// Concurrent mode: deliveries in flight (default 16).
        #[arg(long)]
        concurrency: Option<u32>,
        /// Deliver only messages with this header (repeatable): key=value.
        #[arg(long = "filter", value_parser = key_value)]
        filters: Vec<(String, String)>,
        /// Start at this offset instead of at new messages.
        #[arg(long)]
        from_offset: Option<u64>,
    },
    /// List subscriptions.
    List {
        #[arg(long)]
        station: Option<String>,
    },
    /// Show one subscription.
    Info {
        subscription: String,
    },
    /// Stop delivering until resumed (nothing is skipped).
    Pause {
        subscription: String,
    },
    Resume {
        subscription: String,
    },
    /// Delete a subscription and its delivery records.
    Delete {
        subscription: String,
    },
    /// List deliveries, oldest first.
    Deliveries {
        subscription: String,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Failed deliveries (the subscription's dead letters).
    DeadLetters {
        subscription: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Queue failed deliveries again, with fresh attempts.
    Resend {
        subscription: String,
        /// Delivery ids.
        #[arg(
            required_unless_present = "failed_since",
            conflicts_with = "failed_since"
        )]
        deliveries: Vec<String>,
        /// Every delivery that failed since then: a duration ago (2h) or a
        /// time (2026-11-23T10:00:00Z).
        #[arg(long, value_parser = since)]
        failed_since: Option<u64>,
    },
}

/// A time in ms since the epoch, from `2h` (ago) or an RFC 3339 time.
fn since(text: &str) -> Result<u64, String> {
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(at) => at,
        Err(_) => {
            let ago = humantime::parse_duration(text)
                .map_err(|e| format!("'{text}' is neither a time nor a duration: {e}"))?;
            std::time::SystemTime::now() - ago
        }
    };
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got '{text}'"))
}

pub async fn run(context: &Context, command: SubscriptionsCommand) -> CliResult {
    let client = &context.client;
    match command {
        SubscriptionsCommand::Create {
            name,
            station,
            url,
            secret,
            retry_schedule,
            max_attempts,
            timeout,
            format,
            mode,
            concurrency,
            filters,
            from_offset,
        } => {
            let create = wire::CreateSubscription {
                name,
                station,
                url,
                secret: secret.unwrap_or_default(),
                max_attempts: max_attempts.unwrap_or(0),
                retry_schedule: retry_schedule.unwrap_or_default(),
                timeout_ms: timeout.map_or(0, |t| t.as_millis() as u64),
                format: match format {
                    None => String::new(),
                    Some(Format::Cloudevents) => "cloudevents".into(),
                    Some(Format::CloudeventsBinary) => "cloudevents-binary".into(),
                    Some(Format::Raw) => "raw".into(),
                },
                filter: filters
                    .into_iter()
                    .map(|(key, value)| wire::Header { key, value })
                    .collect(),
                ordered: matches!(mode, Mode::Ordered),
                concurrency: concurrency.unwrap_or(0),
                start: from_offset.map(Start::FromOffset),
            };
            let info = client.create_subscription(create).await?;
            subscription(context, &info);
        }
        SubscriptionsCommand::List { station } => {
            let all = client
                .list_subscriptions(&station.unwrap_or_default())
                .await?;
            subscription_list(context, &all);
        }
        SubscriptionsCommand::Info { subscription: id } => {
            subscription(context, &client.describe_subscription(&id).await?);
        }
        SubscriptionsCommand::Pause { subscription: id } => {
            subscription(context, &client.pause_subscription(&id, true).await?);
        }
        SubscriptionsCommand::Resume { subscription: id } => {
            subscription(context, &client.pause_subscription(&id, false).await?);
        }
        SubscriptionsCommand::Delete { subscription: id } => {
            client.delete_subscription(&id).await?;
            output::done(context, &format!("deleted subscription {id}"));
        }
        SubscriptionsCommand::Deliveries {
            subscription: id,
            status,
            limit,
        } => {
            let status = status.map(|s| match s {
                Status::Pending => "pending",
                Status::Completed => "completed",
                Status::Failed => "failed",
            });
            deliveries(context, &id, status, limit).await?;
        }
        SubscriptionsCommand::DeadLetters {
            subscription: id,
            limit,
        } => deliveries(context, &id, Some("failed"), limit).await?,
        SubscriptionsCommand::Resend {
            subscription: id,
            deliveries: ids,
            failed_since,
        } => {
            let count = client
                .resend_deliveries(wire::ResendDeliveries {
                    subscription: id,
                    delivery_ids: ids,
                    failed_since_ms: failed_since.unwrap_or(0),
                })
                .await?;
            output::done(context, &format!("{count} deliveries queued again"));
        }
    }
    Ok(())
}

async fn deliveries(context: &Context, id: &str, status: Option<&str>, limit: u32) -> CliResult {
    let list = context
        .client
        .list_deliveries(wire::ListDeliveries {
            subscription: id.to_owned(),
            status: status.unwrap_or_default().to_owned(),
            after_offset: None,
            limit,
        })
        .await?;
    if context.json {
        let all: Vec<Value> = list
            .deliveries
            .iter()
            .map(|d| {
                json!({
                    "id": d.id, "offset": d.offset, "message_id": d.message_id,
                    "status": d.status, "attempts": d.attempts,
                    "next_attempt_at": (d.status == "pending").then(|| time(d.next_attempt_at_ms)),
                    "last_status": (d.last_status > 0).then_some(d.last_status),
                    "last_error": (!d.last_error.is_empty()).then_some(&d.last_error),
                })
            })
            .collect();
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
            if d.last_status > 0 {
                d.last_status.to_string()
            } else {
                "-".into()
            },
            d.last_error.clone(),
            d.id.clone(),
        ]);
    }
    outln!("{table}");
    Ok(())
}

fn info_json(info: &SubscriptionInfo) -> Value {
    json!({
        "id": info.id,
        "name": info.name,
        "station": info.station,
        "url": info.url,
        "secret": (!info.secret.is_empty()).then_some(&info.secret),
        "max_attempts": info.max_attempts,
        "retry_schedule_ms": info.retry_schedule_ms,
        "fixed_delay_ms": (info.fixed_delay_ms > 0).then_some(info.fixed_delay_ms),
        "timeout_ms": info.timeout_ms,
        "format": info.format,
        "filter": info.filter.iter().map(|h| (h.key.clone(), Value::String(h.value.clone()))).collect::<serde_json::Map<_, _>>(),
        "mode": if info.ordered { "ordered" } else { "concurrent" },
        "concurrency": info.concurrency,
        "paused": info.paused,
        "created_at": time(info.created_at_ms),
        "created_by": info.created_by,
        "start_offset": info.start_offset,
        "cursor": info.cursor,
    })
}

fn subscription(context: &Context, info: &SubscriptionInfo) {
    let value = info_json(info);
    if context.json {
        outln!("{value}");
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    if let Value::Object(fields) = value {
        for (key, value) in fields {
            if value.is_null() {
                continue;
            }
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            table.add_row(vec![key, text]);
        }
    }
    outln!("{table}");
    if !info.secret.is_empty() {
        outln!("Keep the secret: it is shown only now.");
    }
}

fn subscription_list(context: &Context, all: &[SubscriptionInfo]) {
    if context.json {
        outln!("{}", Value::Array(all.iter().map(info_json).collect()));
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "name", "station", "url", "mode", "state", "cursor", "id",
    ]);
    for info in all {
        table.add_row(vec![
            info.name.clone(),
            info.station.clone(),
            info.url.clone(),
            if info.ordered {
                "ordered".into()
            } else {
                format!("concurrent ({})", info.concurrency)
            },
            if info.paused { "paused" } else { "active" }.to_owned(),
            info.cursor.to_string(),
            info.id.clone(),
        ]);
    }
    outln!("{table}");
}
