//! `depot dead-letters ...`: what a station's schema refused.

use base64::Engine as _;
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::{self, DeadLetter, resend_outcome::Outcome};

use crate::cli::{
    CliResult, Context,
    output::{size, text_of, time},
};

/// Dead letters fetched per request while listing.
const PAGE: u32 = 500;

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List a station's dead letters, oldest first.
    List {
        station: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one dead letter with its payload.
    Show { station: String, id: u64 },
    /// Validate dead letters against the station's current schema again:
    /// those that pass are produced and removed, the others stay.
    Resend {
        station: String,
        /// The dead letters to resend.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<u64>,
        /// Resend every dead letter of the station.
        #[arg(long)]
        all: bool,
    },
    /// Delete dead letters for good (nobody wants them back).
    Delete {
        station: String,
        /// The dead letters to delete.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<u64>,
        /// Delete every dead letter the station holds now.
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(context: &Context, command: DeadLettersCommand) -> CliResult {
    let client = &context.client;
    match command {
        DeadLettersCommand::List { station, limit } => {
            let mut letters = Vec::new();
            let mut after = 0;
            while letters.len() < limit {
                let page = PAGE.min((limit - letters.len()) as u32);
                let list = client.list_dead_letters(&station, after, page).await?;
                after = list.dead_letters.last().map_or(after, |l| l.id);
                letters.extend(list.dead_letters);
                if !list.more {
                    break;
                }
            }
            list_output(context, &letters);
        }
        DeadLettersCommand::Show { station, id } => {
            show(context, &client.dead_letter(&station, id).await?);
        }
        DeadLettersCommand::Resend { station, ids, all } => {
            let mut resent = 0;
            let mut failed = 0;
            let mut after = 0;
            loop {
                let result = client
                    .resend_dead_letters(wire::ResendDeadLetters {
                        station: station.clone(),
                        ids: ids.clone(),
                        all,
                        after_id: after,
                        limit: 0,
                    })
                    .await?;
                for outcome in &result.outcomes {
                    match &outcome.outcome {
                        Some(Outcome::Offset(offset)) => {
                            resent += 1;
                            report(context, outcome.id, Ok(*offset));
                        }
                        Some(Outcome::Error(error)) => {
                            failed += 1;
                            report(context, outcome.id, Err(&error.message));
                        }
                        None => {}
                    }
                }
                after = result.outcomes.last().map_or(after, |o| o.id);
                if !result.more {
                    break;
                }
            }
            if !context.json {
                outln!("{resent} resent, {failed} still refused");
            }
            if failed > 0 {
                return Err(format!("{failed} dead letters were not resent").into());
            }
        }
        DeadLettersCommand::Delete {
            station,
            mut ids,
            all,
        } => {
            ids.sort_unstable();
            ids.dedup();
            let mut deleted = 0;
            let mut up_to_id = 0;
            loop {
                let result = client
                    .delete_dead_letters(wire::DeleteDeadLetters {
                        station: station.clone(),
                        ids: ids.clone(),
                        all,
                        up_to_id,
                        limit: 0,
                    })
                    .await?;
                deleted += result.deleted;
                up_to_id = result.up_to_id;
                if !result.more {
                    break;
                }
            }
            if context.json {
                outln!("{}", json!({ "deleted": deleted }));
            } else {
                outln!("deleted {deleted} dead letters of {station}");
            }
            let missing = ids.len() as u64 - deleted.min(ids.len() as u64);
            if !all && missing > 0 {
                return Err(format!(
                    "{missing} of the ids given were not dead letters of {station}"
                )
                .into());
            }
        }
    }
    Ok(())
}

fn report(context: &Context, id: u64, result: Result<u64, &str>) {
    match (context.json, result) {
        (true, Ok(offset)) => outln!("{}", json!({"id": id, "offset": offset})),
        (true, Err(error)) => outln!("{}", json!({"id": id, "error": error})),
        (false, Ok(offset)) => outln!("{id}: produced at offset {offset}"),
        (false, Err(error)) => outln!("{id}: {error}"),
    }
}

fn letter_json(letter: &DeadLetter, with_payload: bool) -> Value {
    let headers: serde_json::Map<String, Value> = letter
        .headers
        .iter()
        .map(|h| (h.key.clone(), Value::String(h.value.clone())))
        .collect();
    let mut value = json!({
        "id": letter.id,
        "station": letter.station,
        "time": time(letter.timestamp_ms),
        "reason": letter.reason,
        "schema": letter.schema,
        "schema_version": letter.schema_version,
        "producer": letter.producer,
        "msg_id": (!letter.msg_id.is_empty()).then_some(&letter.msg_id),
        "headers": headers,
        "content_type": letter.content_type,
        "payload_bytes": letter.payload_bytes,
    });
    crate::views::add_poison_fields(letter, &mut value);
    if with_payload {
        match text_of(&letter.content_type, &letter.payload) {
            Some(text) => value["payload"] = Value::String(text.to_owned()),
            None => {
                value["payload_base64"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&letter.payload))
            }
        }
    }
    value
}

fn list_output(context: &Context, letters: &[DeadLetter]) {
    if context.json {
        let all = letters.iter().map(|l| letter_json(l, false)).collect();
        outln!("{}", Value::Array(all));
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "id",
        "time",
        "producer",
        "refused by",
        "size",
        "reason",
    ]);
    for letter in letters {
        let refused_by = match letter.consumer.as_str() {
            "" => format!("schema {} v{}", letter.schema, letter.schema_version),
            consumer => format!("consumer {consumer} (offset {})", letter.offset),
        };
        table.add_row(vec![
            letter.id.to_string(),
            time(letter.timestamp_ms),
            letter.producer.clone(),
            refused_by,
            size(letter.payload_bytes),
            letter.reason.clone(),
        ]);
    }
    outln!("{table}");
}

fn show(context: &Context, letter: &DeadLetter) {
    let value = letter_json(letter, true);
    if context.json {
        outln!("{value}");
    } else {
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
}
