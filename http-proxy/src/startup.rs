//! Building and running the proxy: the broker link (embedded or remote), the
//! actix-web app on a pre-bound listener, CORS, and the process entry point.

use std::{net::TcpListener, process::ExitCode, sync::Arc, time::Duration};

use actix::Arbiter;
use actix_cors::Cors;
use actix_web::{
    App, HttpServer,
    dev::{Server, ServerHandle, Service},
    http::KeepAlive,
    web,
};
use clap::Parser;

use depot_broker::{
    Broker,
    client::Endpoint,
    run::{run_process, shutdown_signal},
    server::WireServer,
};
use tokio_util::sync::CancellationToken;

use crate::{
    broker_link::{EmbeddedBroker, RemoteBroker, SharedLink},
    coalesce::ProduceCoalescer,
    config::{ProxyCommand, ProxyConfig},
    metrics::Metrics,
    routes::{self, AppState},
    tokens::Tokens,
};

/// Browsers may cache a CORS preflight answer this long (seconds).
const CORS_MAX_AGE: usize = 600;

/// CORS for the configured origins only; credentials are never allowed
/// (tokens travel in the Authorization header or the query, not cookies).
/// Any request header is allowed: a browser's headers become its message's
/// headers, as curl's do.
fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allow_any_header()
        .max_age(CORS_MAX_AGE);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// The HTTP server on `listener`, not yet running: it starts its workers
/// when first polled, and calls `on_worker` on each of them as it starts.
/// Must be created inside an actix system.
pub fn http_server(
    config: ProxyConfig,
    link: SharedLink,
    listener: TcpListener,
    closing: CancellationToken,
    on_worker: impl Fn() + Send + Clone + 'static,
) -> std::io::Result<Server> {
    let workers = http_workers(&config);
    // Read before `config` moves into the app state.
    let max_connections_per_worker = config.http_max_connections.max(1).div_ceil(workers);
    let request_timeout = config.http_request_timeout;
    let keep_alive = keep_alive(config.http_keep_alive);
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            depot_broker::tls::server_config(cert, key)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        _ => None,
    };
    let tls_handshake_timeout = config.tls_handshake_timeout;
    let shutdown_timeout = config.shutdown_timeout;
    let max_streams = config.http2_max_streams.max(1);
    let name = format!("depot-proxy@{}", listener.local_addr()?);
    let hub = crate::ws::hub::Hub::new(name, link.clone());
    actix_web::rt::spawn(hub.clone().run());
    let state = web::Data::new(AppState {
        tokens: Tokens::new(link.clone(), config.verified_token_cache),
        link,
        config,
        metrics: Metrics::new(),
        ws_connections: Default::default(),
        waiting_fetches: Default::default(),
        sse_streams: Default::default(),
        hub,
        fanout: Default::default(),
        closing,
    });
    let server = HttpServer::new(move || {
        on_worker();
        let metrics = state.clone();
        App::new()
            .app_data(state.clone())
            // One per worker (this closure runs on each).
            .app_data(web::Data::new(ProduceCoalescer::new(
                state.link.clone(),
                state.metrics.clone(),
                state.config.max_batch_body,
            )))
            .wrap_fn(move |request, service| {
                let started = std::time::Instant::now();
                let metrics = metrics.clone();
                let (permit, response) = match crate::streams::admit(&request) {
                    Ok(permit) => (permit, Ok(service.call(request))),
                    Err(refusal) => (None, Err(request.error_response(refusal))),
                };
                async move {
                    let response = match response {
                        Ok(call) => call.await?,
                        Err(refused) => refused,
                    };
                    drop(permit);
                    // Counted by route pattern, so station names do not
                    // explode the label set. Asked once routed: the router
                    // then remembers the match (asked before, it matched
                    // every pattern again, 2% of the CPU per produce).
                    let route = response
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".into());
                    metrics
                        .metrics
                        .request(&route, response.status().as_u16(), started.elapsed());
                    Ok(response)
                }
            })
            .wrap(cors(&state.config.cors_origins))
            .configure(routes::configure)
    })
    .workers(workers)
    .max_connections(max_connections_per_worker)
    .client_request_timeout(request_timeout)
    .keep_alive(keep_alive)
    // Signals are ours (`stop_on_signal`): WebSockets are closed first.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs());
    let server = match tls {
        Some(tls) => server
            .tls_handshake_timeout(tls_handshake_timeout)
            .on_connect(crate::streams::on_connect(max_streams))
            .listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// On SIGINT or SIGTERM: marks the proxy as closing (WebSockets are closed
/// with "going away") and stops the server gracefully: requests in flight
/// get `--shutdown-timeout` to finish.
fn stop_on_signal(server: ServerHandle, closing: CancellationToken) {
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: closing WebSockets, finishing requests in flight");
        closing.cancel();
        server.stop(true).await;
    });
}

/// `--http-keep-alive` as actix-web takes it (0: none).
fn keep_alive(idle: Duration) -> KeepAlive {
    match idle {
        Duration::ZERO => KeepAlive::Disabled,
        idle => KeepAlive::Timeout(idle),
    }
}

/// The HTTP worker threads `config` asks for (0: one per core).
fn http_workers(config: &ProxyConfig) -> usize {
    match config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

/// Parses the command line and runs the proxy.
pub fn proxy_main() -> ExitCode {
    run_proxy(ProxyCommand::parse().config)
}

/// Runs the proxy with this configuration until SIGINT or SIGTERM.
pub fn run_proxy(config: ProxyConfig) -> ExitCode {
    run_process("depot-proxy", run(config))
}

async fn run(config: ProxyConfig) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(&config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr()?;
    match config.broker.clone() {
        Some(broker) => {
            let password = config
                .broker_password
                .clone()
                .ok_or("--broker needs --broker-password (or DEPOT_PROXY_BROKER_PASSWORD)")?;
            let endpoint =
                Endpoint::from_flags(broker, config.broker_tls, config.broker_tls_ca.as_deref())?;
            let link = Arc::new(RemoteBroker::new(
                endpoint,
                config.broker_user.clone(),
                password,
                config.broker_connections,
            ));
            let closing = CancellationToken::new();
            let server = http_server(config, link, listener, closing.clone(), || {})?;
            stop_on_signal(server.handle(), closing);
            println!("depot-proxy listening on {address}");
            server.await?;
        }
        None => run_embedded(config, listener).await?,
    }
    Ok(())
}

/// Runs the proxy with its broker in this process. Unless it has worker
/// threads of its own (`--broker-workers`), the broker runs on the HTTP
/// server's workers: the server starts first, each worker reports its
/// thread, then the broker opens on them (requests that arrive meanwhile
/// wait).
async fn run_embedded(
    config: ProxyConfig,
    listener: TcpListener,
) -> Result<(), Box<dyn std::error::Error>> {
    let address = listener.local_addr()?;
    let broker_config = config.embedded_broker();
    let broker_listener = TcpListener::bind(&broker_config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", broker_config.listen))?;
    let lend_workers = config.broker_workers == 0;
    let workers = http_workers(&config);
    let (link, slot) = EmbeddedBroker::deferred();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let closing = CancellationToken::new();
    let server = http_server(
        config,
        Arc::new(link),
        listener,
        closing.clone(),
        move || {
            let _ = started_tx.send(Arbiter::current());
        },
    )?;
    let handle = server.handle();
    stop_on_signal(handle.clone(), closing);
    let mut served = actix_web::rt::spawn(server);
    let opened = if lend_workers {
        let mut threads = Vec::with_capacity(workers);
        while threads.len() < workers {
            tokio::select! {
                thread = started.recv() => {
                    threads.push(thread.ok_or("the HTTP server's workers did not start")?);
                }
                stopped = &mut served => {
                    stopped??;
                    return Err("the HTTP server stopped before its workers started".into());
                }
            }
        }
        Broker::open_on(broker_config, threads)
    } else {
        Broker::open(broker_config)
    };
    let opened = match opened {
        Ok(opened) => opened,
        Err(error) => {
            handle.stop(false).await;
            return Err(error.into());
        }
    };
    if let Some(password) = &opened.generated_root_password {
        println!("Generated the password of user 'root' (shown only now): {password}");
        println!("Set DEPOT_ROOT_PASSWORD before the first start to choose it instead.");
    }
    let broker = opened.broker;
    slot.fill(broker.clone());
    let wire = WireServer::start(broker.clone(), broker_listener)?;
    println!("depot-broker listening on {}", wire.local_addr());
    println!("depot-proxy listening on {address}");
    // The server stops on SIGINT/SIGTERM (`stop_on_signal`); then the
    // broker flushes.
    let served = served.await;
    wire.stop();
    broker.shutdown();
    served??;
    Ok(())
}
