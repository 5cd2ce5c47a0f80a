//! `depot consumers ...`: consumer positions, how far each named reader of
//! a station got (`depot fetch --consumer NAME --commit` moves one).

use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use depot_schemas::wire::ConsumerInfo;

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

fn list_output(context: &Context, consumers: &[ConsumerInfo]) {
    if context.json {
        let all = consumers.iter().map(views::consumer).collect();
        outln!("{}", Value::Array(all));
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["consumer", "next offset", "lag", "updated", "by"]);
    for c in consumers {
        table.add_row(vec![
            c.consumer.clone(),
            c.next_offset.to_string(),
            c.lag.to_string(),
            views::time(c.updated_at_ms),
            c.updated_by.clone(),
        ]);
    }
    outln!("{table}");
}
