//! `depot-bench`: Depot's load generator.
//!
//! `depot-bench wire` measures produce over the wire protocol against a
//! broker it starts (a child process on a temporary directory, so its memory
//! can be read alone) or one given with `--broker`, and compares it with the
//! ceiling of sled doing the same inserts on the same disk, measured in the
//! same run.

mod broker_process;
mod ceiling;
mod latency;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "depot-bench", version, about = "Depot's load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce over the wire protocol: single messages and batches.
    Wire(wire::WireArgs),
    /// Runs a broker (used by `wire` to start its child process).
    #[command(hide = true)]
    Broker {
        #[command(flatten)]
        config: depot_broker::BrokerConfig,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Broker { config } => depot_broker::run::run_broker(config),
        Command::Wire(args) => match wire::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("depot-bench: {error}");
                ExitCode::FAILURE
            }
        },
    }
}
