//! `depot-bench`: Depot's load generator.
//!
//! - `depot-bench wire` measures produce over the wire protocol against a
//!   broker it starts (a child process on a temporary directory, so its
//!   memory can be read alone) or one given with `--broker`, and compares it
//!   with the ceiling of sled doing the same inserts on the same disk and
//!   with the loopback round trips of a bare TCP server, both measured in
//!   the same run.
//! - `depot-bench http` measures produce over the HTTP proxy, with an
//!   embedded and with a remote broker, against a bare actix-web server
//!   measured in the same run. With `--schema json|protobuf` it measures
//!   validated produce against unvalidated produce in the same run instead.
//! - `depot-bench deliver` measures webhook delivery to a local receiver.

mod bare_http;
mod bare_tcp;
mod bare_ws;
mod bench_tls;
mod ceiling;
mod child;
mod closed_loop;
mod deliver;
mod flush_stats;
mod http;
mod http_client;
mod http_schema;
mod latency;
mod ratios;
mod wire;
mod wire_producer;
mod ws;

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
    /// Produce over the HTTP proxy, embedded and remote, against a bare
    /// actix-web ceiling.
    Http(http::HttpArgs),
    /// Webhook delivery: throughput to 1 and 10 subscriptions, ordered, and
    /// produce-to-delivery latency.
    Deliver(deliver::DeliverArgs),
    /// WebSocket fan-out: N connections to one proxy, messages broadcast
    /// to all of them; frames/s, broadcast-to-all latency, proxy RSS.
    Ws(ws::WsArgs),
    /// Runs the bare HTTP ceiling server (a child process of `http`).
    #[command(hide = true)]
    BareHttp {
        #[arg(long)]
        listen: String,
        /// Serve HTTPS with this certificate (and --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        #[arg(long)]
        tls_key: Option<std::path::PathBuf>,
    },
    /// Runs the bare TCP ceiling server (a child process of `wire`).
    #[command(hide = true)]
    BareTcp {
        #[arg(long)]
        listen: String,
    },
    /// Runs the bare WebSocket ceiling server (a child process of `ws`).
    #[command(hide = true)]
    BareWs {
        #[arg(long)]
        listen: String,
    },
}

/// The same allocator as `depot-broker` and `depot-proxy`, so the ceiling
/// servers (children running this executable) and the servers they are
/// compared with allocate alike.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::BareHttp {
            listen,
            tls_cert,
            tls_key,
        } => finish(bare_http::serve(&listen, tls_cert.zip(tls_key))),
        Command::BareTcp { listen } => finish(bare_tcp::serve(&listen)),
        Command::BareWs { listen } => finish(bare_ws::serve(&listen)),
        Command::Wire(args) => finish(wire::run(args)),
        Command::Http(args) => finish(http::run(args)),
        Command::Deliver(args) => finish(deliver::run(args)),
        Command::Ws(args) => finish(ws::run(args)),
    }
}

fn finish(outcome: Result<(), impl std::fmt::Display>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("depot-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
