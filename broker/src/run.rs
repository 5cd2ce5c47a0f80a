//! Running the broker as a process: logging, start-up, the first-start root
//! password, and a clean shutdown on Ctrl-C or SIGTERM (final flush).
//! Shared by `depot-broker` and every harness that starts the real thing.

use std::process::ExitCode;

use clap::Parser;

use crate::{broker::Broker, config::BrokerConfig, server::WireServer};

/// `depot-broker`: durable stations over the Depot wire protocol.
#[derive(Debug, Parser)]
#[command(name = "depot-broker", version, about)]
pub struct BrokerCommand {
    #[command(flatten)]
    pub config: BrokerConfig,
}

/// Parses the command line and runs the broker until it is told to stop.
pub fn broker_main() -> ExitCode {
    run_broker(BrokerCommand::parse().config)
}

/// Runs the broker with this configuration until SIGINT or SIGTERM.
pub fn run_broker(config: BrokerConfig) -> ExitCode {
    run_process("depot-broker", serve(config))
}

/// Runs a server process's main future in an actix system with logging on;
/// a failure prints one line, prefixed with the program's name.
pub fn run_process(
    program: &str,
    main: impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
) -> ExitCode {
    init_logging();
    match actix::System::new().block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `DEPOT_LOG` (default `info`), as text for
/// people or, with `DEPOT_LOG_FORMAT=json`, one JSON object per line for
/// log pipelines.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEPOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("DEPOT_LOG_FORMAT").unwrap_or_default();
    let _ = match format.as_str() {
        "json" => logs.json().try_init(),
        "" | "text" => logs.try_init(),
        other => {
            let init = logs.try_init();
            tracing::warn!(
                format = other,
                "DEPOT_LOG_FORMAT is text or json; logging text"
            );
            init
        }
    };
}

async fn serve(config: BrokerConfig) -> Result<(), Box<dyn std::error::Error>> {
    let listener = std::net::TcpListener::bind(&config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let data_dir = config.options.data_dir.clone();
    let opened = Broker::open(config)?;
    if let Some(password) = &opened.generated_root_password {
        // Printed once, on first start, and never logged.
        println!("Generated the password of user 'root' (shown only now): {password}");
        println!("Set DEPOT_ROOT_PASSWORD before the first start to choose it instead.");
    }
    let broker = opened.broker;
    if let Some(address) = broker.config().metrics_listen.clone() {
        let metrics = std::net::TcpListener::bind(&address)
            .map_err(|e| format!("cannot listen for metrics on {address}: {e}"))?;
        tracing::info!(address = %metrics.local_addr()?, "serving /metrics");
        crate::server::metrics_http::start(broker.clone(), metrics)?;
    }
    let server = WireServer::start(broker.clone(), listener)?;
    tracing::info!(address = %server.local_addr(), data = %data_dir.display(), "depot-broker ready");
    // A stable line on stdout for scripts and test harnesses that start the
    // broker on port 0 and need to learn the port.
    println!("depot-broker listening on {}", server.local_addr());
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop();
    broker.shutdown();
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        BrokerCommand::command().debug_assert();
        let config = BrokerCommand::try_parse_from([
            "depot-broker",
            "--listen",
            "127.0.0.1:7777",
            "--max-frame",
            "1MiB",
        ])
        .expect("valid flags")
        .config;
        assert_eq!(config.listen, "127.0.0.1:7777");
        assert_eq!(config.options.max_frame_bytes, 1 << 20);
    }
}
