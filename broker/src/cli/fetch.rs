//! `depot fetch` and `depot tail`.

use std::time::Duration;

use clap::Args;

use crate::cli::{CliResult, Context, output};

#[derive(Debug, Args)]
pub struct FetchArgs {
    station: String,
    /// First offset to print (default: the oldest stored).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Messages to print at most.
    #[arg(long, default_value_t = 100)]
    count: u32,
    /// When nothing is stored at --from yet, wait this long (e.g. 30s; at
    /// most the broker's --max-fetch-wait) for a message to land there.
    #[arg(long, value_parser = crate::config::parse_duration, default_value = "0s")]
    wait: Duration,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    station: String,
    /// Start at this offset instead of at the newest message.
    #[arg(long)]
    from: Option<u64>,
}

/// Messages the broker may push to `tail` ahead of printing.
const TAIL_CREDIT: u32 = 1000;

pub async fn run_fetch(context: &Context, args: FetchArgs) -> CliResult {
    let mut from = args.from;
    let mut remaining = args.count;
    // Only the first fetch waits: once messages come, the rest are there.
    let mut wait = args.wait;
    while remaining > 0 {
        let batch = context
            .client
            .fetch_waiting(&args.station, from, remaining, wait)
            .await?;
        wait = Duration::ZERO;
        if batch.messages.is_empty() {
            break;
        }
        remaining -= batch.messages.len() as u32;
        for message in &batch.messages {
            output::message(context, message);
        }
        from = batch.next_offset;
    }
    Ok(())
}

pub async fn run_tail(context: &Context, args: TailArgs) -> CliResult {
    let mut subscription = context
        .client
        .subscribe(&args.station, args.from, TAIL_CREDIT)
        .await?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            batch = subscription.next_batch() => match batch {
                Some(batch) => {
                    for message in &batch? {
                        output::message(context, message);
                    }
                }
                None => return Err("the connection to the broker closed".into()),
            },
        }
    }
}
