//! `depot fetch` and `depot tail`.

use std::time::Duration;

use clap::Args;

use crate::cli::{CliResult, Context, output};

#[derive(Debug, Args)]
pub struct FetchArgs {
    station: String,
    /// First offset to print (default: the oldest stored).
    #[arg(long, default_value_t = 0, conflicts_with = "consumer")]
    from: u64,
    /// Start where this consumer left off (its committed position; the
    /// oldest message when it has none yet) instead of at --from.
    #[arg(long)]
    consumer: Option<String>,
    /// Once the messages are printed, commit the consumer's position past
    /// them, so its next fetch goes on after them (with --lease:
    /// acknowledge the messages printed).
    #[arg(long, requires = "consumer")]
    commit: bool,
    /// Share the consumer with other workers (a work queue): lease the
    /// messages for this long (e.g. 5m), so that no other worker of the
    /// consumer gets them meanwhile; acknowledge them with --commit or
    /// `depot consumers ack`, or they are handed out again once the lease
    /// ends.
    #[arg(long, requires = "consumer", value_parser = crate::config::parse_duration)]
    lease: Option<Duration>,
    /// With --lease: a message whose lease ended this many times without an
    /// acknowledgement becomes a dead letter of the consumer instead of
    /// coming again (0: no limit).
    #[arg(long, requires = "lease", default_value_t = 0)]
    max_deliveries: u32,
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
    #[arg(long, conflicts_with = "consumer")]
    from: Option<u64>,
    /// Start where this consumer left off (the oldest message when it has
    /// no position yet), and commit its position past each batch once it
    /// is printed, so a tail started again goes on after it.
    #[arg(long)]
    consumer: Option<String>,
}

/// Messages the broker may push to `tail` ahead of printing.
const TAIL_CREDIT: u32 = 1000;

pub async fn run_fetch(context: &Context, args: FetchArgs) -> CliResult {
    if let (Some(lease), Some(consumer)) = (args.lease, &args.consumer) {
        return run_leased_fetch(context, &args, consumer, lease).await;
    }
    let client = &context.client;
    let mut remaining = args.count;
    // The consumer's position is read once, by the first fetch; the rest
    // go on from offsets, as a consumer that commits at the end would.
    let mut batch = match &args.consumer {
        Some(consumer) => {
            client
                .fetch_for_consumer(&args.station, consumer, remaining, args.wait)
                .await?
        }
        None => {
            client
                .fetch_waiting(&args.station, args.from, remaining, args.wait)
                .await?
        }
    };
    loop {
        remaining -= batch.messages.len() as u32;
        for message in &batch.messages {
            output::message(context, message);
        }
        if batch.messages.is_empty() || remaining == 0 {
            break;
        }
        // Only the first fetch waits: once messages come, the rest are there.
        batch = client
            .fetch_waiting(&args.station, batch.next_offset, remaining, Duration::ZERO)
            .await?;
    }
    if let (Some(consumer), true) = (&args.consumer, args.commit) {
        // After printing: a crash before this prints them again next time
        // (at least once), never skips them.
        client
            .commit_position(&args.station, consumer, batch.next_offset)
            .await?;
    }
    Ok(())
}

/// One leased fetch: the messages are this worker's until the lease ends.
async fn run_leased_fetch(
    context: &Context,
    args: &FetchArgs,
    consumer: &str,
    lease: Duration,
) -> CliResult {
    let client = &context.client;
    let batch = client
        .fetch_leased_at_most(
            &args.station,
            consumer,
            args.count,
            lease,
            args.max_deliveries,
            args.wait,
        )
        .await?;
    for message in &batch.messages {
        output::message(context, message);
    }
    if args.commit && !batch.messages.is_empty() {
        // After printing, as for --commit without a lease.
        let offsets = batch.messages.iter().map(|m| m.offset).collect();
        client.acknowledge(&args.station, consumer, offsets).await?;
    }
    Ok(())
}

pub async fn run_tail(context: &Context, args: TailArgs) -> CliResult {
    let client = &context.client;
    let mut subscription = match &args.consumer {
        Some(consumer) => {
            client
                .subscribe_for_consumer(&args.station, consumer, TAIL_CREDIT)
                .await?
        }
        None => {
            client
                .subscribe(&args.station, args.from, TAIL_CREDIT)
                .await?
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            batch = subscription.next_batch() => match batch {
                Some(batch) => {
                    let batch = batch?;
                    for message in &batch {
                        output::message(context, message);
                    }
                    if let (Some(consumer), Some(last)) = (&args.consumer, batch.last()) {
                        client
                            .commit_position(&args.station, consumer, last.offset + 1)
                            .await?;
                    }
                }
                None => return Err("the connection to the broker closed".into()),
            },
        }
    }
}
