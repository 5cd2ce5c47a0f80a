//! `depot subscriptions ...`: webhook subscriptions and their deliveries.

use clap::{Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::{self, SubscriptionInfo, create_subscription::Start};

use crate::{
    cli::{
        CliResult, Context, deliveries,
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

impl Format {
    fn name(self) -> &'static str {
        match self {
            Self::Cloudevents => "cloudevents",
            Self::CloudeventsBinary => "cloudevents-binary",
            Self::Raw => "raw",
        }
    }
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

/// How deliveries are made: given at creation (absent ones take the
/// default) and changeable later (absent ones stay).
#[derive(Debug, clap::Args)]
pub struct DeliveryOptions {
    /// whsec_...; generated (and printed once) at creation when not given.
    #[arg(long)]
    secret: Option<String>,
    /// Delays before attempts 1, 2, ... (0s,5s,30s,...) or fixed:60s.
    #[arg(long)]
    retry_schedule: Option<String>,
    /// Attempts per delivery before it fails for good (default 10).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Per attempt (e.g. 15s).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<std::time::Duration>,
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Concurrent (the default) or ordered.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Concurrent mode: deliveries in flight (default 16).
    #[arg(long)]
    concurrency: Option<u32>,
    /// Deliver only messages with this header (repeatable): key=value.
    #[arg(long = "filter", value_parser = key_value)]
    filters: Vec<(String, String)>,
    /// Attempts per second at most (0 on update removes the limit).
    #[arg(long)]
    max_rate: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Push a station's messages to a URL (signed, retried).
    Create {
        /// Unique among subscriptions; commands take it or the id.
        name: String,
        /// The station whose messages are delivered.
        #[arg(long)]
        station: String,
        /// Where to POST them: an http(s) URL the destination policy allows.
        #[arg(long)]
        url: String,
        /// Free text for people (at most 1,000 characters).
        #[arg(long, default_value = "")]
        description: String,
        /// Start at this offset instead of at new messages.
        #[arg(long)]
        from_offset: Option<u64>,
        #[command(flatten)]
        options: DeliveryOptions,
    },
    /// Change a subscription (what is not given stays); it restarts with
    /// the change, retrying what was in flight.
    Update {
        /// Its name or id.
        subscription: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// Replace the description ("" clears it).
        #[arg(long)]
        description: Option<String>,
        /// A new destination.
        #[arg(long)]
        url: Option<String>,
        /// Deliver every message again (no header filter).
        #[arg(long, conflicts_with = "filters")]
        clear_filter: bool,
        #[command(flatten)]
        options: DeliveryOptions,
    },
    /// List subscriptions.
    List {
        #[arg(long)]
        station: Option<String>,
    },
    /// Show one subscription.
    Info { subscription: String },
    /// Stop delivering until resumed (nothing is skipped).
    Pause { subscription: String },
    /// Deliver again, from where it paused.
    Resume { subscription: String },
    /// Delete a subscription and its delivery records.
    Delete { subscription: String },
    /// List deliveries, oldest first.
    Deliveries {
        subscription: String,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The next page: deliveries after this one (a delivery id).
        #[arg(long)]
        after: Option<String>,
    },
    /// One delivery (by id, the webhook-id its receiver saw) and its
    /// attempts.
    Delivery { id: String },
    /// One attempt (by id, `<delivery id>.<number>`): request and response.
    Attempt { id: String },
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

fn headers(pairs: Vec<(String, String)>) -> Vec<wire::Header> {
    pairs
        .into_iter()
        .map(|(key, value)| wire::Header { key, value })
        .collect()
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
            description,
            from_offset,
            options: o,
        } => {
            let create = wire::CreateSubscription {
                name,
                description,
                station,
                url,
                secret: o.secret.unwrap_or_default(),
                max_attempts: o.max_attempts.unwrap_or(0),
                retry_schedule: o.retry_schedule.unwrap_or_default(),
                timeout_ms: o.timeout.map_or(0, |t| t.as_millis() as u64),
                format: o.format.map(Format::name).unwrap_or_default().to_owned(),
                filter: headers(o.filters),
                ordered: matches!(o.mode, Some(Mode::Ordered)),
                concurrency: o.concurrency.unwrap_or(0),
                start: from_offset.map(Start::FromOffset),
                max_rate: o.max_rate.unwrap_or(0),
            };
            let info = client.create_subscription(create).await?;
            subscription(context, &info);
        }
        SubscriptionsCommand::Update {
            subscription: id,
            name,
            description,
            url,
            clear_filter,
            options: o,
        } => {
            let update = wire::UpdateSubscription {
                subscription: id,
                name,
                description,
                url,
                secret: o.secret,
                max_attempts: o.max_attempts,
                retry_schedule: o.retry_schedule,
                timeout_ms: o.timeout.map(|t| t.as_millis() as u64),
                format: o.format.map(|f| f.name().to_owned()),
                replace_filter: clear_filter || !o.filters.is_empty(),
                filter: headers(o.filters),
                ordered: o.mode.map(|m| matches!(m, Mode::Ordered)),
                concurrency: o.concurrency,
                max_rate: o.max_rate,
            };
            subscription(context, &client.update_subscription(update).await?);
        }
        SubscriptionsCommand::Delivery { id } => {
            deliveries::show_delivery(context, &client.get_delivery(&id).await?);
        }
        SubscriptionsCommand::Attempt { id } => {
            deliveries::show_attempt(context, &client.get_delivery_attempt(&id).await?);
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
            after,
        } => {
            let status = status.map(|s| match s {
                Status::Pending => "pending",
                Status::Completed => "completed",
                Status::Failed => "failed",
            });
            let list = wire::ListDeliveries {
                subscription: id,
                status: status.unwrap_or_default().to_owned(),
                after_offset: None,
                limit,
                after_id: after.unwrap_or_default(),
            };
            deliveries::list(context, list).await?;
        }
        SubscriptionsCommand::DeadLetters {
            subscription: id,
            limit,
        } => {
            let list = wire::ListDeliveries {
                subscription: id,
                status: "failed".into(),
                limit,
                ..Default::default()
            };
            deliveries::list(context, list).await?;
        }
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

fn info_json(info: &SubscriptionInfo) -> Value {
    json!({
        "id": info.id,
        "name": info.name,
        "description": info.description,
        "station": info.station,
        "url": if info.relay { "(each message's own: the relay)" } else { info.url.as_str() },
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
        "max_rate": (info.max_rate > 0).then_some(info.max_rate),
        "circuit": info.circuit,
        "delivered": info.counts.as_ref().map(|c| c.delivered),
        "dead_lettered": info.counts.as_ref().map(|c| c.dead_lettered),
        "failed_attempts": info.counts.as_ref().map(|c| c.failed_attempts),
        "retried": info.counts.as_ref().map(|c| c.retried),
        "pending": info.counts.as_ref().map(|c| c.pending),
    })
}

fn subscription(context: &Context, info: &SubscriptionInfo) {
    let value = info_json(info);
    if context.json {
        outln!("{value}");
        return;
    }
    outln!("{}", output::field_table(value));
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
            if info.paused {
                "paused".to_owned()
            } else {
                format!("active, circuit {}", info.circuit)
            },
            info.cursor.to_string(),
            info.id.clone(),
        ]);
    }
    outln!("{table}");
}
