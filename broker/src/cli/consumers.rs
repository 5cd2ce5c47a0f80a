//! `depot consumers ...`: consumer positions, how far each named reader of
//! a station got (`depot fetch --consumer NAME --commit` moves one), and
//! the leases of workers sharing one (`ack`, `extend`, `release`).

use std::time::Duration;

use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::{self, ConsumerInfo, LeasesChanged};

use crate::{
    cli::{CliResult, Context, output},
    views,
};

#[derive(Debug, Subcommand)]
pub enum ConsumersCommand {
    /// List a station's consumers with their positions and lag.
    List { station: String },
    /// Set a consumer's position: the first offset it has not handled
    /// (back, to read again; forward, to skip). Creates the consumer.
    Commit {
        station: String,
        consumer: String,
        next_offset: u64,
    },
    /// Forget a consumer's position.
    Delete { station: String, consumer: String },
    /// Acknowledge messages a worker handled after `depot fetch --lease`;
    /// the position moves over those that follow it without a gap.
    Ack {
        station: String,
        consumer: String,
        #[arg(required = true)]
        offsets: Vec<u64>,
    },
    /// Keep messages leased by `depot fetch --lease` longer (a worker still
    /// busy with them): their leases now end --lease from now.
    Extend {
        station: String,
        consumer: String,
        /// Offsets, each optionally with the deliveries its fetch printed
        /// (OFFSET:DELIVERIES), so that only this worker's lease changes.
        #[arg(required = true, value_parser = parse_lease)]
        leases: Vec<wire::LeaseRef>,
        #[arg(long, value_parser = crate::config::parse_duration)]
        lease: Duration,
    },
    /// Give leased messages back, so that a worker gets them again at once
    /// (or after --delay).
    Release {
        station: String,
        consumer: String,
        /// As for `extend`.
        #[arg(required = true, value_parser = parse_lease)]
        leases: Vec<wire::LeaseRef>,
        #[arg(long, value_parser = crate::config::parse_duration, default_value = "0s")]
        delay: Duration,
    },
}

/// `OFFSET` or `OFFSET:DELIVERIES`.
fn parse_lease(text: &str) -> Result<wire::LeaseRef, String> {
    let invalid = |_| format!("{text:?}: expected OFFSET or OFFSET:DELIVERIES");
    let (offset, deliveries) = match text.split_once(':') {
        Some((offset, deliveries)) => (
            offset.parse().map_err(invalid)?,
            deliveries.parse().map_err(invalid)?,
        ),
        None => (text.parse().map_err(invalid)?, 0),
    };
    Ok(wire::LeaseRef { offset, deliveries })
}

pub async fn run(context: &Context, command: ConsumersCommand) -> CliResult {
    let client = &context.client;
    match command {
        ConsumersCommand::List { station } => {
            list_output(context, &client.list_consumers(&station).await?);
        }
        ConsumersCommand::Commit {
            station,
            consumer,
            next_offset,
        } => {
            let info = client
                .commit_position(&station, &consumer, next_offset)
                .await?;
            list_output(context, std::slice::from_ref(&info));
        }
        ConsumersCommand::Ack {
            station,
            consumer,
            offsets,
        } => {
            let info = client.acknowledge(&station, &consumer, offsets).await?;
            list_output(context, std::slice::from_ref(&info));
        }
        ConsumersCommand::Extend {
            station,
            consumer,
            leases,
            lease,
        } => {
            let changed = client
                .change_leases(&station, &consumer, leases, lease)
                .await?;
            changed_output(context, &changed, "extended")?;
        }
        ConsumersCommand::Release {
            station,
            consumer,
            leases,
            delay,
        } => {
            let changed = client
                .change_leases(&station, &consumer, leases, delay)
                .await?;
            changed_output(context, &changed, "released")?;
        }
        ConsumersCommand::Delete { station, consumer } => {
            client.delete_consumer(&station, &consumer).await?;
            output::done(
                context,
                &format!("deleted consumer {consumer} of station {station}"),
            );
        }
    }
    Ok(())
}

/// What `extend` or `release` did; an error (after printing) when a lease
/// was lost, so a script sees it.
fn changed_output(context: &Context, changed: &LeasesChanged, verb: &str) -> CliResult {
    if context.json {
        outln!(
            "{}",
            json!({ "changed": changed.changed, "lost": changed.lost })
        );
    } else if !changed.changed.is_empty() {
        outln!("{verb} the leases of offsets {}", listed(&changed.changed));
    }
    if changed.lost.is_empty() {
        return Ok(());
    }
    Err(format!(
        "not leased to you (any more): offsets {} (acknowledged, or handed out again since)",
        listed(&changed.lost)
    )
    .into())
}

fn listed(offsets: &[u64]) -> String {
    let offsets: Vec<String> = offsets.iter().map(u64::to_string).collect();
    offsets.join(", ")
}

fn list_output(context: &Context, consumers: &[ConsumerInfo]) {
    if context.json {
        let all = consumers.iter().map(views::consumer).collect();
        outln!("{}", Value::Array(all));
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    // Work queues' columns only when there is one.
    let work = consumers.iter().any(|c| c.leased + c.redeliveries > 0);
    let mut header = vec!["consumer", "next offset", "lag", "updated", "by"];
    if work {
        header.extend(["leased", "acked ahead", "redelivered", "dead letters"]);
    }
    table.set_header(header);
    for c in consumers {
        let mut row = vec![
            c.consumer.clone(),
            c.next_offset.to_string(),
            c.lag.to_string(),
            views::time(c.updated_at_ms),
            c.updated_by.clone(),
        ];
        if work {
            row.extend(
                [
                    c.leased,
                    c.acknowledged_ahead,
                    c.redeliveries,
                    c.dead_lettered,
                ]
                .map(|n| n.to_string()),
            );
        }
        table.add_row(row);
    }
    outln!("{table}");
}
