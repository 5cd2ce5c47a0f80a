//! `depot`, the admin CLI: stations, users, schemas, dead letters, produce,
//! fetch and tail over the wire protocol. Human-readable tables by default, `--json` for scripts; every
//! error prints one line and exits non-zero.

/// `println!` that ends the CLI quietly when stdout is closed (for example
/// `depot fetch orders | head -1`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

mod audit;
mod connections;
mod consumers;
mod dead_letters;
mod deliveries;
mod fetch;
mod output;
mod produce;
mod relay;
mod schemas;
mod stations;
mod users;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::{BrokerClient, ClientError, Endpoint, Secret};

#[derive(Debug, Parser)]
#[command(name = "depot", version, about = "Administer a Depot broker")]
pub struct Cli {
    // The connection flags go before the command (`depot --user ana users
    // list`): after it, `--password` is the password of a user being created.
    /// The broker's wire address.
    #[arg(long, env = "DEPOT_BROKER", default_value = "127.0.0.1:6666")]
    broker: String,

    /// Who you are.
    #[arg(long, env = "DEPOT_USER", default_value = "root")]
    user: String,

    /// Your password.
    #[arg(long, env = "DEPOT_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Connect over TLS (a broker started with --wire-tls-cert), checking
    /// its certificate against the public web PKI roots.
    #[arg(long, env = "DEPOT_TLS")]
    tls: bool,

    /// Connect over TLS, checking the broker's certificate against the CA
    /// certificates of this PEM file (a private CA, or the broker's own
    /// self-signed certificate).
    #[arg(long, env = "DEPOT_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,

    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, inspect, change and delete stations.
    #[command(subcommand)]
    Stations(stations::StationsCommand),
    /// Create, list, change and delete users and their permissions.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Produce one message, or every line of a file.
    Produce(produce::ProduceArgs),
    /// Print stored messages from an offset, or from where a consumer left
    /// off.
    Fetch(fetch::FetchArgs),
    /// Follow a station, printing new messages until Ctrl-C (or from where
    /// a consumer left off, committing as it goes).
    Tail(fetch::TailArgs),
    /// Create, version, roll back and delete station schemas.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Consumer positions: how far each named reader of a station got.
    #[command(subcommand)]
    Consumers(consumers::ConsumersCommand),
    /// Inspect and resend messages a station's schema refused.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLettersCommand),
    /// Webhook subscriptions: push a station's messages to a URL.
    #[command(subcommand)]
    Subscriptions(webhooks::SubscriptionsCommand),
    /// Live WebSocket connections, across proxies.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// Push data to a user's WebSocket connections, or to one connection.
    Notify(connections::NotifyArgs),
    /// Relay one HTTP request: tried at once, kept and retried if it does
    /// not arrive (see `subscriptions deliveries depot.relay`).
    Relay(relay::RelayArgs),
    /// The latest entries of the audit trail: who changed what, from where,
    /// and what was refused.
    Audit(audit::AuditArgs),
}

/// Everything a command needs: the connection and the output mode.
pub struct Context {
    pub client: BrokerClient,
    pub json: bool,
}

pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Parses the command line and runs the command.
pub fn cli_main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("depot: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let password = cli
        .password
        .ok_or("no password: pass --password or set DEPOT_PASSWORD")?;
    let endpoint = Endpoint::from_flags(cli.broker.clone(), cli.tls, cli.tls_ca.as_deref())?;
    let client = BrokerClient::connect_to(&endpoint, &cli.user, Secret::Password(password))
        .await
        .map_err(|e| {
            // A broker serving TLS closes a plain connection at its first frame.
            let hint = match (&e, &endpoint.tls) {
                (ClientError::Disconnected, None) => {
                    "; if the broker serves TLS, connect with --tls-ca or --tls"
                }
                _ => "",
            };
            format!("{e} ({}){hint}", cli.broker)
        })?;
    let context = Context {
        client,
        json: cli.json,
    };
    match cli.command {
        Command::Stations(command) => stations::run(&context, command).await,
        Command::Users(command) => users::run(&context, command).await,
        Command::Produce(args) => produce::run(&context, args).await,
        Command::Fetch(args) => fetch::run_fetch(&context, args).await,
        Command::Tail(args) => fetch::run_tail(&context, args).await,
        Command::Schemas(command) => schemas::run(&context, command).await,
        Command::Consumers(command) => consumers::run(&context, command).await,
        Command::DeadLetters(command) => dead_letters::run(&context, command).await,
        Command::Subscriptions(command) => webhooks::run(&context, command).await,
        Command::Relay(args) => relay::run(&context, args).await,
        Command::Audit(args) => audit::run(&context, args).await,
        Command::Connections(command) => connections::run(&context, command).await,
        Command::Notify(args) => connections::notify(&context, args).await,
    }
}
