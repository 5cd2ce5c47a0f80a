//! `depot produce`: one message from the command line, or one message per
//! line of a file, sent in pipelined batches with a progress bar and a
//! summary.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    time::Instant,
};

use bytes::Bytes;
use clap::Args;
use futures::{StreamExt, stream::FuturesUnordered};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use depot_schemas::wire::{Header, NewMessage, ProduceOutcome, produce_outcome::Outcome};

use crate::cli::{CliResult, Context};

/// Lines sent per produce request.
const FILE_BATCH_MESSAGES: usize = 500;
/// Produce requests in flight at once while sending a file.
const FILE_BATCHES_IN_FLIGHT: usize = 8;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    station: String,
    /// The message (omit with --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    message: Option<String>,
    /// Send every line of this file as a message (JSON Lines or text).
    #[arg(long)]
    file: Option<PathBuf>,
    /// A header, repeatable: --header key=value.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Content type (default: application/json when the message parses as
    /// JSON, text/plain otherwise).
    #[arg(long)]
    content_type: Option<String>,
    /// Idempotency id: a repeat within the station's window is not stored.
    #[arg(long, conflicts_with = "file")]
    msg_id: Option<String>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("'{s}' is not key=value"))
}

impl ProduceArgs {
    fn message(&self, text: String, msg_id: Option<String>) -> NewMessage {
        let content_type = self.content_type.clone().unwrap_or_else(|| {
            if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                "application/json".into()
            } else {
                "text/plain".into()
            }
        });
        NewMessage {
            msg_id: msg_id.unwrap_or_default(),
            headers: self
                .headers
                .iter()
                .map(|(key, value)| Header {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            content_type,
            payload: Bytes::from(text),
        }
    }
}

#[derive(Default)]
struct Tally {
    sent: u64,
    duplicates: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, outcomes: &[ProduceOutcome]) {
        for outcome in outcomes {
            match &outcome.outcome {
                Some(Outcome::Offset(_)) => self.sent += 1,
                Some(Outcome::DuplicateOf(_)) => self.duplicates += 1,
                Some(Outcome::Error(e)) => self.fail(1, &e.message),
                None => self.fail(1, "no outcome"),
            }
        }
    }

    fn fail(&mut self, count: u64, reason: &str) {
        self.failed += count;
        self.first_error.get_or_insert_with(|| reason.to_owned());
    }
}

pub async fn run(context: &Context, args: ProduceArgs) -> CliResult {
    match &args.file {
        Some(path) => produce_file(context, &args, path.clone()).await,
        None => produce_one(context, &args).await,
    }
}

async fn produce_one(context: &Context, args: &ProduceArgs) -> CliResult {
    let text = args
        .message
        .clone()
        .expect("clap requires a message without --file");
    let message = args.message(text, args.msg_id.clone());
    let outcomes = context.client.produce(&args.station, vec![message]).await?;
    let outcome = outcomes.into_iter().next().and_then(|o| o.outcome);
    let (line, value) = match outcome {
        Some(Outcome::Offset(offset)) => (
            format!("stored at offset {offset}"),
            json!({ "offset": offset, "duplicate": false }),
        ),
        Some(Outcome::DuplicateOf(offset)) => (
            format!("duplicate of offset {offset}; not stored again"),
            json!({ "offset": offset, "duplicate": true }),
        ),
        Some(Outcome::Error(error)) => return Err(error.message.into()),
        None => return Err("the broker gave no outcome".into()),
    };
    if context.json {
        outln!("{value}");
    } else {
        outln!("{line}");
    }
    Ok(())
}

async fn produce_file(context: &Context, args: &ProduceArgs, path: PathBuf) -> CliResult {
    let file =
        std::fs::File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(total_bytes);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut in_flight = FuturesUnordered::new();
    let mut lines = BufReader::new(file).lines();
    let mut batch = Vec::with_capacity(FILE_BATCH_MESSAGES);
    let mut batch_bytes = 0u64;
    let mut finished_reading = false;

    loop {
        while !finished_reading && in_flight.len() < FILE_BATCHES_IN_FLIGHT {
            match lines.next() {
                Some(line) => {
                    let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    batch_bytes += line.len() as u64 + 1;
                    if !line.trim().is_empty() {
                        batch.push(args.message(line, None));
                    }
                }
                None => finished_reading = true,
            }
            if batch.len() == FILE_BATCH_MESSAGES || (finished_reading && !batch.is_empty()) {
                let messages = std::mem::take(&mut batch);
                let count = messages.len() as u64;
                let bytes = std::mem::take(&mut batch_bytes);
                // Sent here, in file order; only the answers are awaited
                // together, so the station keeps the lines in order.
                let answer = context.client.start_produce(&args.station, messages).await;
                in_flight.push(async move {
                    let outcomes = match answer {
                        Ok(answer) => answer.await,
                        Err(e) => Err(e),
                    };
                    (outcomes, count, bytes)
                });
            }
        }
        let Some((result, count, bytes)) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(outcomes) => tally.add(&outcomes),
            Err(e) => tally.fail(count, &e.to_string()),
        }
        progress.inc(bytes);
        progress.set_message(format!("{} sent", tally.sent));
    }
    progress.finish_and_clear();

    let seconds = started.elapsed().as_secs_f64();
    let rate = (tally.sent + tally.duplicates) as f64 / seconds.max(1e-9);
    if context.json {
        let summary = json!({
            "sent": tally.sent,
            "duplicates": tally.duplicates,
            "failed": tally.failed,
            "seconds": seconds,
            "msgs_per_second": rate.round(),
            "first_error": tally.first_error,
        });
        outln!("{summary}");
    } else {
        outln!(
            "sent {}, duplicates {}, failed {} in {:.2}s ({:.0} msgs/s)",
            tally.sent,
            tally.duplicates,
            tally.failed,
            seconds,
            rate
        );
        if let Some(error) = &tally.first_error {
            outln!("first error: {error}");
        }
    }
    if tally.failed > 0 {
        return Err(format!("{} messages failed", tally.failed).into());
    }
    Ok(())
}
