//! `depot-bench wire`: produce throughput and acknowledgement latency over
//! the wire protocol, with durable acks, against two ceilings measured in the
//! same run: sled alone on the same disk, and the loopback round trips of a
//! bare TCP server (`bare_tcp`).
//!
//! Single messages on a connection each are measured in rounds, each paired
//! with a sled ceiling run, and reported as the median ratio; their
//! producers are [`FrameProducer`]s, as lean as the loopback ceiling's
//! (`--single-client depot` uses `BrokerClient`). The shared-connection
//! and batch phases that follow use `BrokerClient`, as the proxy does.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use bytesize::ByteSize;
use clap::{Args, ValueEnum};

use depot_broker::{
    auth::PASSWORD_WORK_AREA_RELEASE_AFTER, client::BrokerClient, config::parse_duration,
};
use depot_schemas::wire::NewMessage;

use crate::{
    bare_tcp::EchoProducer,
    ceiling, child,
    child::{ChildServer, Program},
    closed_loop::{self, PhaseResult, Producer, Timing},
    latency,
    ratios::{self, Ratios},
    wire_producer::FrameProducer,
};

#[derive(Debug, Args)]
pub struct WireArgs {
    /// Use this broker instead of starting one (memory is then not measured).
    #[arg(long)]
    broker: Option<String>,
    /// root's password for `--broker`.
    #[arg(long, env = "DEPOT_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Measured time of each phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before each phase.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Producers sending one message per request.
    #[arg(long, default_value_t = 64)]
    single_producers: usize,
    /// The client of the single-message producers that have a connection
    /// each.
    #[arg(long, value_enum, default_value_t = SingleClient::Minimal)]
    single_client: SingleClient,
    /// Single messages on a connection each are measured in this many
    /// rounds, each the sled ceiling and the broker back to back (in
    /// alternating order); the ratio reported is the median of the rounds'
    /// ratios. A shared machine's disk and CPU drift by a fifth within
    /// minutes: pairs close in time keep that drift out of the ratio.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Producers sending batches.
    #[arg(long, default_value_t = 8)]
    batch_producers: usize,
    /// Load generator threads (the producers are spread over them).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// After the phase where every single-message producer has its own
    /// connection, one where each load generator thread opens this many and
    /// its producers share them, pipelined, as clones of one client do (the
    /// proxy's way); 0 skips it.
    #[arg(long, default_value_t = 1)]
    shared_connections: usize,
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Inserts for the sled ceiling measurement.
    #[arg(long, default_value_t = 300_000)]
    ceiling_inserts: u64,
    /// After the phases, store this many more messages and report the
    /// broker's idle memory (e.g. 10000000).
    #[arg(long, default_value_t = 0)]
    fill: u64,
    /// Directory for the data (default: the system temp dir); the ceiling
    /// runs on the same disk.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Extra flags for the started broker, e.g. --broker-arg=--cache=8MiB.
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    broker_args: Vec<String>,
}

/// Who sends the single messages of the connection-each phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SingleClient {
    /// One task per connection: write a request, read its answer
    /// ([`FrameProducer`]), as lean as the loopback ceiling's producer.
    Minimal,
    /// Depot's pipelined `BrokerClient`, one per connection.
    Depot,
}

/// Messages per request while filling.
const FILL_BATCH: usize = 1000;
/// Producers while filling.
const FILL_PRODUCERS: usize = 8;
/// Idle time before reading memory, so background work settles: a broker
/// started by hand and filled with 10 M messages after the phases was at
/// 39.2 MiB 3 s after the last produce and 37.6 MiB from 10 s on.
const SETTLE: Duration = Duration::from_secs(10);
/// Wait after start before reading the idle memory: start-up hashes root's
/// password, and the broker keeps argon2's 7 MiB work area for a while after
/// the last check (for the next login of a burst), then the allocator takes
/// up to a second or two to hand the pages back.
const IDLE_AFTER_START: Duration =
    PASSWORD_WORK_AREA_RELEASE_AFTER.saturating_add(Duration::from_secs(3));

impl WireArgs {
    fn timing(&self) -> Timing {
        Timing {
            warmup: self.warmup,
            duration: self.duration,
        }
    }
}

pub fn run(args: WireArgs) -> Result<(), String> {
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let workdir = tempfile::Builder::new()
        .prefix("depot-bench-")
        .tempdir_in(&base)
        .map_err(|e| format!("cannot create a directory in {}: {e}", base.display()))?;

    println!(
        "depot-bench wire: payload {} B, durable acks",
        args.payload_bytes
    );
    println!("machine: {}", machine());

    let ceiling_none = ceiling::sled_inserts_per_second(
        &workdir.path().join("ceiling-no-flush"),
        args.ceiling_inserts,
        args.payload_bytes,
        0,
    )?;
    println!("sled ceiling, no flush: {ceiling_none:.0} inserts/s");
    let loopback = loopback_ceiling(&args)?;
    println!(
        "loopback ceiling, bare TCP server, {} connections, one {} B frame per round trip: {:.0} round trips/s, {}{}",
        args.single_producers,
        args.payload_bytes,
        loopback.rate(),
        latency::summary(&loopback.latency),
        cpu_per_message("server", &loopback),
    );

    const PASSWORD: &str = "depot-bench";
    let (process, broker) = match &args.broker {
        Some(addr) => {
            let password = args.password.clone().ok_or("--broker needs --password")?;
            let broker = BrokerUnderTest {
                addr: addr.clone(),
                password,
                pid: None,
            };
            (None, broker)
        }
        None => {
            let process =
                child::broker(&workdir.path().join("broker"), PASSWORD, &args.broker_args)?;
            let broker = BrokerUnderTest {
                addr: process.addrs[0].to_string(),
                password: PASSWORD.to_owned(),
                pid: Some(process.pid()),
            };
            (Some(process), broker)
        }
    };
    let rss = |label: &str| {
        if let Some(process) = &process
            && let Some(bytes) = child::rss_bytes(process.pid())
        {
            println!("broker RSS {label}: {}", ByteSize(bytes).display().iec());
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::time::sleep(IDLE_AFTER_START).await;
        rss("idle at start");

        let single = tokio::task::block_in_place(|| single_rounds(&args, &broker, workdir.path()))?;
        let ceiling_100 = single.ceiling;
        println!(
            "single messages, {} producers, a connection each ({}): {:.0} msgs/s ({}; the ceiling: sled flushing every 100 inserts; {:.2} x loopback ceiling), ack {}{}",
            args.single_producers,
            args.single_client.name(),
            single.total.rate(),
            single.ratios,
            single.total.rate() / loopback.rate(),
            latency::summary(&single.total.latency),
            cpu_per_message("broker", &single.total),
        );
        if args.shared_connections > 0 {
            let shared = tokio::task::block_in_place(|| {
                phase(
                    &args,
                    &broker,
                    "bench.single-shared",
                    args.single_producers,
                    1,
                    args.shared_connections,
                )
            })?;
            println!(
                "single messages, {} producers sharing connections ({} per load generator thread): {:.0} msgs/s ({:.2} x sled flush-every-100 ceiling), ack {}{}",
                args.single_producers,
                args.shared_connections,
                shared.rate(),
                shared.rate() / ceiling_100,
                latency::summary(&shared.latency),
                cpu_per_message("broker", &shared),
            );
        }

        let batch = tokio::task::block_in_place(|| {
            phase(
                &args,
                &broker,
                "bench.batch",
                args.batch_producers,
                args.batch_size,
                0,
            )
        })?;
        println!(
            "batches of {}, {} producers: {:.0} msgs/s ({:.2} x sled flush-every-100 ceiling), ack {}{}",
            args.batch_size,
            args.batch_producers,
            batch.rate(),
            batch.rate() / ceiling_100,
            latency::summary(&batch.latency),
            cpu_per_message("broker", &batch),
        );
        rss("after the phases");

        if args.fill > 0 {
            let started = Instant::now();
            fill(&args, &broker).await?;
            println!(
                "stored {} more messages in {:.1}s",
                args.fill,
                started.elapsed().as_secs_f64()
            );
            tokio::time::sleep(SETTLE).await;
            rss(&format!("idle after storing {} more messages", args.fill));
        }
        Ok::<_, String>(())
    })?;
    drop(process);
    Ok(())
}

/// ", broker CPU 18.6 µs/msg" when the server's CPU time was read: a
/// figure that moves less with a noisy machine than throughput does.
fn cpu_per_message(server: &str, result: &PhaseResult) -> String {
    result
        .server_cpu_per_message_us()
        .map_or(String::new(), |us| format!(", {server} CPU {us:.1} µs/msg"))
}

fn payload(bytes: usize) -> bytes::Bytes {
    let mut body = String::from("{\"event\":\"bench\",\"pad\":\"");
    while body.len() + 2 < bytes {
        body.push('x');
    }
    body.push_str("\"}");
    bytes::Bytes::from(body)
}

fn messages(count: usize, payload: &bytes::Bytes) -> Vec<NewMessage> {
    (0..count)
        .map(|_| NewMessage {
            content_type: "application/json".into(),
            payload: payload.clone(),
            ..Default::default()
        })
        .collect()
}

impl SingleClient {
    fn name(self) -> &'static str {
        match self {
            SingleClient::Minimal => "minimal clients",
            SingleClient::Depot => "BrokerClients",
        }
    }
}

/// The connection-each single-message phase, measured in rounds against
/// the sled ceiling.
struct SingleRounds {
    /// Every round's run, added up.
    total: PhaseResult,
    ratios: Ratios,
    /// The median of the rounds' sled ceilings (flush every 100 inserts),
    /// for the other phases' ratios.
    ceiling: f64,
}

/// Measures single messages, a connection per producer, in `args.rounds`
/// rounds, each paired with a run of the sled ceiling on the same disk.
fn single_rounds(
    args: &WireArgs,
    broker: &BrokerUnderTest,
    workdir: &Path,
) -> Result<SingleRounds, String> {
    let station = "bench.single";
    // Each round's ceiling gets a fresh directory, kept until the end of
    // the run: deleting one frees its blocks while the broker is measured.
    let sled_ceiling = |round: usize| {
        let dir = workdir.join(format!("ceiling-flush-100-{round}"));
        ceiling::sled_inserts_per_second(&dir, args.ceiling_inserts, args.payload_bytes, 100)
    };
    let producers = || match args.single_client {
        SingleClient::Minimal => minimal_phase(args, broker, station),
        SingleClient::Depot => phase(args, broker, station, args.single_producers, 1, 0),
    };
    let mut total: Option<PhaseResult> = None;
    let mut ratios = Ratios::default();
    let mut ceilings = Vec::new();
    for round in 0..args.rounds.max(1) {
        let (run, ceiling) = ratios::measure_pair(round, producers, || sled_ceiling(round))?;
        println!(
            "  round {}: sled ceiling (flush every 100) {ceiling:.0} inserts/s, broker {:.0} msgs/s: {:.2} x",
            round + 1,
            run.rate(),
            run.rate() / ceiling,
        );
        ratios.push(run.rate() / ceiling);
        ceilings.push(ceiling);
        match &mut total {
            Some(total) => total.absorb(run)?,
            None => total = Some(run),
        }
    }
    Ok(SingleRounds {
        total: total.expect("at least one round"),
        ratios,
        ceiling: ratios::median(&ceilings),
    })
}

/// One message per request from [`FrameProducer`]s, a connection each.
fn minimal_phase(
    args: &WireArgs,
    broker: &BrokerUnderTest,
    station: &str,
) -> Result<PhaseResult, String> {
    let (addr, password, station) = (
        broker.addr.clone(),
        broker.password.clone(),
        station.to_owned(),
    );
    let message = messages(1, &payload(args.payload_bytes));
    closed_loop::run(
        args.client_threads,
        args.single_producers,
        args.timing(),
        move |count| {
            let (addr, password, station, message) = (
                addr.clone(),
                password.clone(),
                station.clone(),
                message.clone(),
            );
            async move {
                let mut producers = Vec::with_capacity(count);
                for _ in 0..count {
                    let producer =
                        FrameProducer::connect(&addr, "root", &password, &station, message.clone())
                            .await?;
                    producers.push(producer);
                }
                Ok(producers)
            }
        },
        broker.pid,
    )
}

/// The broker under test.
struct BrokerUnderTest {
    addr: String,
    password: String,
    /// Its process, when the benchmark started it (then its CPU time is read).
    pid: Option<u32>,
}

/// `producers` each sending `batch` messages per request to `station`, one
/// request at a time. Each has its own connection, or, with `shared` > 0,
/// each load generator thread's producers share `shared` connections.
fn phase(
    args: &WireArgs,
    broker: &BrokerUnderTest,
    station: &str,
    producers: usize,
    batch: usize,
    shared: usize,
) -> Result<PhaseResult, String> {
    let (addr, password, station) = (
        broker.addr.clone(),
        broker.password.clone(),
        station.to_owned(),
    );
    let payload = payload(args.payload_bytes);
    closed_loop::run(
        args.client_threads,
        producers,
        args.timing(),
        move |count| {
            let (addr, password, station, payload) = (
                addr.clone(),
                password.clone(),
                station.clone(),
                payload.clone(),
            );
            async move {
                let connections = match shared {
                    0 => count,
                    shared => shared.min(count),
                };
                let mut clients = Vec::with_capacity(connections);
                for _ in 0..connections {
                    let client = BrokerClient::connect(addr.as_str(), "root", &password)
                        .await
                        .map_err(|e| e.to_string())?;
                    clients.push(client);
                }
                Ok((0..count)
                    .map(|producer| StationProducer {
                        client: clients[producer % clients.len()].clone(),
                        station: station.clone(),
                        payload: payload.clone(),
                        batch,
                    })
                    .collect())
            }
        },
        broker.pid,
    )
}

/// Produces `batch` messages per request to one station.
struct StationProducer {
    client: BrokerClient,
    station: String,
    payload: bytes::Bytes,
    batch: usize,
}

impl Producer for StationProducer {
    async fn round_trip(&mut self) -> Result<u64, String> {
        self.client
            .produce(&self.station, messages(self.batch, &self.payload))
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.batch as u64)
    }
}

/// The same closed loop as the single-message producers, against the bare
/// TCP server: the loopback round trips the machine allows at that
/// concurrency.
fn loopback_ceiling(args: &WireArgs) -> Result<PhaseResult, String> {
    let server = ChildServer::start(
        Program::Bench,
        &["bare-tcp".into(), "--listen".into(), "127.0.0.1:0".into()],
        &[],
        &["bare-tcp"],
    )?;
    let (addr, pid) = (server.addrs[0].to_string(), server.pid());
    let payload_bytes = args.payload_bytes;
    closed_loop::run(
        args.client_threads,
        args.single_producers,
        args.timing(),
        move |count| {
            let addr = addr.clone();
            async move {
                let mut producers = Vec::with_capacity(count);
                for _ in 0..count {
                    producers.push(EchoProducer::connect(&addr, payload_bytes).await?);
                }
                Ok(producers)
            }
        },
        Some(pid),
    )
}

async fn fill(args: &WireArgs, broker: &BrokerUnderTest) -> Result<(), String> {
    let payload = Arc::new(payload(args.payload_bytes));
    let per_producer = args.fill.div_ceil(FILL_PRODUCERS as u64);
    let mut tasks = Vec::new();
    for _ in 0..FILL_PRODUCERS {
        let client = BrokerClient::connect(broker.addr.as_str(), "root", &broker.password)
            .await
            .map_err(|e| e.to_string())?;
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut left = per_producer;
            while left > 0 {
                let count = left.min(FILL_BATCH as u64) as usize;
                client
                    .produce("bench.fill", messages(count, &payload))
                    .await
                    .map_err(|e| e.to_string())?;
                left -= count as u64;
            }
            Ok::<_, String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// CPU model and count, memory, for the report.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| ByteSize(kib * 1024).display().iec().to_string())
        .unwrap_or_default();
    format!("{cores} x {model}, {memory}")
}
