//! `depot audit`: the latest entries of the audit trail (`depot.audit`:
//! every change to the broker's configuration, and every attempt refused)
//! as a table, or as JSON lines with `--json`.

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use depot_schemas::wire::ErrorCode;

use crate::{
    broker::audit::AUDIT_STATION,
    cli::{CliResult, Context},
    client::ClientError,
    views,
};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many of the latest entries to print, oldest first.
    #[arg(long, default_value_t = 50)]
    last: u32,
}

pub async fn run(context: &Context, args: AuditArgs) -> CliResult {
    let client = &context.client;
    let station = match client.describe_station(AUDIT_STATION).await {
        Ok(station) => station,
        // No change was ever made: the trail is made with the first.
        Err(ClientError::Broker {
            code: ErrorCode::StationNotFound,
            ..
        }) => {
            outln!("no changes recorded yet");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let from = station.next_offset.saturating_sub(args.last.into());
    let batch = client.fetch(AUDIT_STATION, from, args.last).await?;
    let entries = batch.messages.iter().map(|message| {
        let entry: Value = serde_json::from_slice(&message.payload).unwrap_or_default();
        (message.timestamp_ms, entry)
    });
    if context.json {
        for (timestamp_ms, mut entry) in entries {
            entry["time"] = views::time(timestamp_ms).into();
            outln!("{entry}");
        }
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "time",
        "user",
        "from",
        "operation",
        "target",
        "outcome",
    ]);
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    for (timestamp_ms, entry) in entries {
        let outcome = match entry["error"]["message"].as_str() {
            Some(message) => format!("refused: {message}"),
            None => text(&entry["outcome"]),
        };
        table.add_row(vec![
            views::time(timestamp_ms),
            text(&entry["user"]),
            text(&entry["from"]),
            text(&entry["operation"]),
            entry["target"].to_string(),
            outcome,
        ]);
    }
    outln!("{table}");
    Ok(())
}
