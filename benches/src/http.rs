//! `depot-bench http`: produce over the HTTP proxy (single messages and
//! batches of 100), on an embedded broker and via a remote broker, against a
//! bare actix-web server in the same run as the ceiling. Closed loop: each
//! connection sends its next request when the previous is answered.

use std::time::{Duration, Instant};

use awc::Client;
use clap::Args;
use hdrhistogram::Histogram;

use depot_broker::config::parse_duration;

use crate::{
    child::{ChildServer, Program, cpu_seconds},
    flush_stats::FlushStats,
    http_client::MinimalConnection,
    latency,
    ratios::{self, Ratios},
    wire::machine,
};

#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Measure schema validation instead: produce realistic 10-field
    /// messages (~200 B) to a station with this kind of schema and to one
    /// without, in the same run, and report the ratio.
    #[arg(long, value_enum)]
    pub schema: Option<crate::http_schema::SchemaKind>,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Client threads (the connections are spread over them).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Extra flags for the process that holds the broker (the embedded
    /// proxy, or the remote broker), e.g. --server-arg=--fsync=never to see
    /// what durability costs.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Measure only these broker modes (repeatable; default both).
    #[arg(long = "mode", value_enum)]
    modes: Vec<Mode>,
    /// Measure only single messages at full load (with their ceiling): no
    /// paced or batch phases. For quick comparisons of two builds.
    #[arg(long)]
    single_only: bool,
    /// Single messages are measured in this many rounds, each the ceiling
    /// and the proxy back to back (in alternating order) on the same two
    /// running servers; the ratio reported is the median of the rounds'
    /// ratios. A shared machine's speed drifts by a fifth within minutes:
    /// pairs close in time keep that drift out of the ratio.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Every request carries a `msg-id` header of its own, so each message
    /// is checked against and added to the station's idempotency index
    /// (what producers that retry safely pay).
    #[arg(long)]
    msg_ids: bool,
    /// The load generator's HTTP client, for the proxy and the ceiling
    /// alike.
    #[arg(long, value_enum, default_value_t = LoadClient::Minimal)]
    client: LoadClient,
    /// Over HTTPS: the proxy and the ceiling serve a certificate made for
    /// the run (HTTP/1.1 over TLS; the proxy's broker link stays plain).
    #[arg(long)]
    tls: bool,
}

/// The load generator's HTTP client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadClient {
    /// One keep-alive connection per closed loop, the request rendered
    /// once ([`MinimalConnection`]): the least CPU per request.
    Minimal,
    /// actix-web's client, `awc`, one connection pool per load generator
    /// thread (what this benchmark used until 2026-12-04).
    Awc,
}

impl HttpArgs {
    /// The broker modes to measure: those asked for, or both.
    pub fn modes(&self) -> Vec<Mode> {
        if self.modes.is_empty() {
            vec![Mode::Embedded, Mode::Remote]
        } else {
            self.modes.clone()
        }
    }
}

/// Where the proxy's broker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// In the proxy's process.
    Embedded,
    /// In its own process, reached over the wire protocol on loopback.
    Remote,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Embedded => "embedded",
            Mode::Remote => "remote",
        })
    }
}

/// A server process whose CPU time a run reads, by name.
pub type Watched = (&'static str, u32);

pub const PASSWORD: &str = "depot-bench";

/// One measured run.
pub struct Run {
    requests: u64,
    seconds: f64,
    latency: Histogram<u64>,
    /// CPU seconds each watched server process used over the measured time.
    cpu: Vec<(&'static str, f64)>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// Adds another run of the same target: requests, time, latencies and
    /// CPU add up.
    fn absorb(&mut self, other: Run) -> Result<(), String> {
        self.requests += other.requests;
        self.seconds += other.seconds;
        self.latency.add(other.latency).map_err(|e| e.to_string())?;
        for (name, seconds) in other.cpu {
            match self.cpu.iter_mut().find(|(mine, _)| *mine == name) {
                Some((_, mine)) => *mine += seconds,
                None => self.cpu.push((name, seconds)),
            }
        }
        Ok(())
    }
}

/// Several runs against one target, and the median of their ratios to
/// paired ceiling runs.
struct Rounds {
    /// Every round's run, added up.
    total: Run,
    /// Each round's ratio to its ceiling.
    ratios: Ratios,
}

/// Measures `target` (on a running proxy, watching `watched`) against the
/// bare server in `args.rounds` back-to-back pairs ([`ratios::measure_pair`]).
fn rounds_against_ceiling(
    args: &HttpArgs,
    target: &Target,
    watched: &[Watched],
    ceiling: &Target,
    ceiling_watched: &[Watched],
    label: &str,
) -> Result<Rounds, String> {
    let mut total: Option<Run> = None;
    let mut ratios = Ratios::default();
    for round in 0..args.rounds.max(1) {
        let (proxy, bare) = ratios::measure_pair(
            round,
            || load(args, target, None, watched),
            || load(args, ceiling, None, ceiling_watched),
        )?;
        let ratio = proxy.rate() / bare.rate();
        println!(
            "  round {}: ceiling {:.0} req/s, {label} {:.0} req/s: {ratio:.2} x",
            round + 1,
            bare.rate(),
            proxy.rate(),
        );
        ratios.push(ratio);
        match &mut total {
            Some(total) => total.absorb(proxy)?,
            None => total = Some(proxy),
        }
    }
    Ok(Rounds {
        total: total.expect("at least one round"),
        ratios,
    })
}

/// Sends `target`'s request with awc: whether the answer was 2xx.
async fn awc_post(client: &Client, target: &Target, msg_id: Option<String>) -> bool {
    let mut request = client
        .post(&target.url)
        .insert_header(("Content-Type", target.content_type));
    if let Some(token) = &target.token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    if let Some(id) = msg_id {
        request = request.insert_header(("msg-id", id));
    }
    match request.send_body(target.body.clone()).await {
        Ok(mut response) => {
            let _ = response.body().await;
            response.status().is_success()
        }
        Err(_) => false,
    }
}

/// A request every connection sends in a loop.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub content_type: &'static str,
    pub body: bytes::Bytes,
}

fn message(bytes: usize) -> String {
    let mut body = String::from("{\"event\":\"bench\",\"pad\":\"");
    while body.len() + 2 < bytes {
        body.push('x');
    }
    body.push_str("\"}");
    body
}

fn batch(count: usize, bytes: usize) -> String {
    let one = message(bytes);
    format!("[{}]", vec![one; count].join(","))
}

/// Waits until a paced request is due and returns the time its latency
/// counts from. When the previous answer came too late for this request to
/// leave on time, that is the time it was due: the server held it up. Else
/// it is when the timer woke the task, because tokio's timer fires on
/// millisecond ticks, up to a millisecond after the due time, and that delay
/// is the load generator's, not the server's.
async fn paced_send_time(due: Instant) -> Instant {
    if Instant::now() >= due {
        return due;
    }
    actix_rt::time::sleep_until(due.into()).await;
    Instant::now()
}

/// Runs `target` from `connections` connections spread over client threads,
/// closed loop, or paced to `rate` requests per second in all (then a
/// request that could not be sent on time counts from when it was due, so a
/// stall is not hidden: see [`paced_send_time`]). Paced
/// connections are spread evenly over the interval: started in phase, all
/// of them would send at the same instant, a burst of `connections`
/// requests every interval instead of a steady rate.
/// The CPU time of the `watched` processes is read over the measured time.
pub fn load(
    args: &HttpArgs,
    target: &Target,
    rate: Option<f64>,
    watched: &[Watched],
) -> Result<Run, String> {
    let interval = rate.map(|rate| Duration::from_secs_f64(args.connections as f64 / rate));
    // The minimal client's connections, one per closed loop (none with awc).
    let mut minimal = match args.client {
        LoadClient::Minimal => (0..args.connections)
            .map(|_| MinimalConnection::new(target))
            .collect::<Result<Vec<_>, String>>()?,
        LoadClient::Awc => Vec::new(),
    }
    .into_iter();
    let started = Instant::now();
    let measure_from = started + args.warmup;
    let stop_at = measure_from + args.duration;
    let cpu_reader = {
        let watched = watched.to_vec();
        std::thread::spawn(move || cpu_over(&watched, measure_from, stop_at))
    };
    // Ids unique to this run, so that no run repeats another's.
    let id_prefix = args.msg_ids.then(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    });
    let per_thread = args.connections.div_ceil(args.client_threads);
    let total = args.connections;
    let mut threads = Vec::new();
    for thread in 0..args.client_threads {
        let connections = per_thread.min(args.connections - thread * per_thread);
        let target = target.clone();
        let mut thread_minimal = minimal
            .by_ref()
            .take(connections)
            .collect::<Vec<_>>()
            .into_iter();
        threads.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                // Clones share one connection pool.
                let client = crate::bench_tls::awc_client(connections, Duration::from_secs(30));
                let mut tasks = Vec::new();
                for index in 0..connections {
                    let client = client.clone();
                    let target = target.clone();
                    // This connection's place in the interval.
                    let phase = interval.map_or(Duration::ZERO, |interval| {
                        interval.mul_f64((thread * per_thread + index) as f64 / total as f64)
                    });
                    let mut minimal = thread_minimal.next();
                    tasks.push(actix_rt::spawn(async move {
                        let mut histogram = latency::new_histogram();
                        let mut requests = 0u64;
                        let mut failures = 0u64;
                        let mut due = started + phase;
                        let mut sent = 0u64;
                        loop {
                            let sent_at = match interval {
                                Some(interval) => {
                                    due += interval;
                                    paced_send_time(due).await
                                }
                                None => Instant::now(),
                            };
                            if sent_at >= stop_at {
                                break;
                            }
                            let msg_id =
                                id_prefix.map(|prefix| format!("{prefix}-{thread}-{index}-{sent}"));
                            sent += 1;
                            let ok = match &mut minimal {
                                Some(connection) => {
                                    connection.post(msg_id.as_deref()).await.unwrap_or(false)
                                }
                                None => awc_post(&client, &target, msg_id).await,
                            };
                            if !ok {
                                // In the warmup too: a server that hangs
                                // must not pass for an idle measurement.
                                failures += 1;
                            } else if sent_at >= measure_from {
                                latency::record(&mut histogram, sent_at.elapsed());
                                requests += 1;
                            }
                        }
                        (requests, failures, histogram)
                    }));
                }
                let mut total = (0u64, 0u64, latency::new_histogram());
                for task in tasks {
                    let (requests, failures, histogram) = task.await.expect("load task");
                    total.0 += requests;
                    total.1 += failures;
                    total.2.add(histogram).expect("same bounds");
                }
                total
            })
        }));
    }
    let mut run = Run {
        requests: 0,
        seconds: args.duration.as_secs_f64(),
        latency: latency::new_histogram(),
        cpu: Vec::new(),
    };
    let mut failures = 0;
    for thread in threads {
        let (requests, failed, histogram) = thread.join().map_err(|_| "a load thread panicked")?;
        run.requests += requests;
        failures += failed;
        run.latency.add(histogram).map_err(|e| e.to_string())?;
    }
    if failures > 0 {
        return Err(format!("{failures} requests failed against {}", target.url));
    }
    if run.requests == 0 {
        return Err(format!("no request to {} was answered in time", target.url));
    }
    run.cpu = cpu_reader.join().map_err(|_| "the CPU reader panicked")?;
    Ok(run)
}

/// The CPU seconds each process used between `from` and `to` (sleeps until
/// then); processes whose time could not be read are left out.
fn cpu_over(watched: &[Watched], from: Instant, to: Instant) -> Vec<(&'static str, f64)> {
    std::thread::sleep(from.saturating_duration_since(Instant::now()));
    let before: Vec<Option<f64>> = watched.iter().map(|&(_, pid)| cpu_seconds(pid)).collect();
    std::thread::sleep(to.saturating_duration_since(Instant::now()));
    watched
        .iter()
        .zip(before)
        .filter_map(|(&(name, pid), before)| Some((name, cpu_seconds(pid)? - before?)))
        .collect()
}

/// Gets an access token from a proxy (blocking, on its own runtime).
pub fn token(proxy: std::net::SocketAddr) -> Result<String, String> {
    actix_rt::System::new().block_on(async move {
        let body = serde_json::json!({
            "username": "root",
            "password": PASSWORD,
            "token_expiry_in_minutes": 60,
        });
        let scheme = crate::bench_tls::scheme();
        let mut response = crate::bench_tls::awc_client(1, Duration::from_secs(30))
            .post(format!("{scheme}://{proxy}/auth/authenticate"))
            .send_json(&body)
            .await
            .map_err(|e| e.to_string())?;
        let answer: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        answer["jwt"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no token: {answer}"))
    })
}

/// Prints a run; with a reference, also the ratio to it, named.
pub fn report(
    label: &str,
    run: &Run,
    messages_per_request: usize,
    reference: Option<(&Run, &str)>,
) {
    let ratio = reference.map_or(String::new(), |(r, name)| {
        format!(" ({:.2} x {name})", run.rate() / r.rate())
    });
    report_with_ratio(label, run, messages_per_request, &ratio);
}

/// Prints single-message rounds: their runs added up and the median ratio.
fn report_rounds(label: &str, rounds: &Rounds) {
    report_with_ratio(label, &rounds.total, 1, &format!(" ({})", rounds.ratios));
}

fn report_with_ratio(label: &str, run: &Run, messages_per_request: usize, ratio: &str) {
    let requests = run.requests.max(1) as f64;
    let cpu: String = run
        .cpu
        .iter()
        .map(|(name, seconds)| format!(", {name} CPU {:.1} µs/req", seconds / requests * 1e6))
        .collect();
    println!(
        "{label}: {:.0} req/s, {:.0} msgs/s{ratio}, latency {}{cpu}",
        run.rate(),
        run.rate() * messages_per_request as f64,
        latency::summary(&run.latency)
    );
}

const JSON: &str = "application/json";

/// A proxy with an embedded broker, or a proxy and the remote broker it
/// uses; both child processes on `data`.
pub fn start_proxy(
    mode: Mode,
    data: &std::path::Path,
    server_args: &[String],
) -> Result<(Option<ChildServer>, ChildServer), String> {
    match mode {
        Mode::Embedded => {
            let mut args: Vec<String> = [
                "--data",
                &data.display().to_string(),
                "--listen",
                "127.0.0.1:0",
                "--broker-listen",
                "127.0.0.1:0",
            ]
            .map(str::to_owned)
            .to_vec();
            args.extend(server_args.iter().cloned());
            args.extend(crate::bench_tls::server_args());
            let proxy = ChildServer::start(
                Program::Shipped("depot-proxy"),
                &args,
                &[("DEPOT_ROOT_PASSWORD", PASSWORD)],
                &["depot-broker", "depot-proxy"],
            )?;
            Ok((None, proxy))
        }
        Mode::Remote => {
            let broker = crate::child::broker(data, PASSWORD, server_args)?;
            let mut args: Vec<String> = [
                "--listen",
                "127.0.0.1:0",
                "--broker",
                &broker.addrs[0].to_string(),
            ]
            .map(str::to_owned)
            .to_vec();
            args.extend(crate::bench_tls::server_args());
            let proxy = ChildServer::start(
                Program::Shipped("depot-proxy"),
                &args,
                &[("DEPOT_PROXY_BROKER_PASSWORD", PASSWORD)],
                &["depot-proxy"],
            )?;
            Ok((Some(broker), proxy))
        }
    }
}

/// Runs `measure` against fresh processes on a fresh directory `data`
/// (given the proxy's address, a root access token and the processes to
/// watch), then stops them,
/// deletes the directory and syncs the disk: every measurement starts from
/// the same state, without an earlier run's log or its writeback competing
/// for the disk (which cost later runs up to 40%).
pub fn on_fresh_proxy<T>(
    args: &HttpArgs,
    mode: Mode,
    data: &std::path::Path,
    measure: impl FnOnce(std::net::SocketAddr, String, &[Watched]) -> Result<T, String>,
) -> Result<T, String> {
    let measured = {
        let (broker, proxy) = start_proxy(mode, data, &args.server_args)?;
        let addr = *proxy.addrs.last().expect("the proxy's address");
        let mut watched = vec![("proxy", proxy.pid())];
        watched.extend(broker.as_ref().map(|broker| ("broker", broker.pid())));
        measure(addr, token(addr)?, &watched)
    };
    std::fs::remove_dir_all(data).map_err(|e| e.to_string())?;
    std::process::Command::new("sync")
        .status()
        .map_err(|e| e.to_string())?;
    measured
}

/// Runs `measure` against a fresh bare actix-web server (the ceiling) at
/// `url`, watching its process.
fn on_bare_server<T>(
    measure: impl FnOnce(String, &[Watched]) -> Result<T, String>,
) -> Result<T, String> {
    let mut args = vec!["bare-http".into(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(crate::bench_tls::server_args());
    let bare = ChildServer::start(Program::Bench, &args, &[], &["bare-http"])?;
    measure(
        format!("{}://{}/", crate::bench_tls::scheme(), bare.addrs[0]),
        &[("server", bare.pid())],
    )
}

pub fn run(args: HttpArgs) -> Result<(), String> {
    if args.tls {
        if args.schema.is_some() {
            return Err("--tls measures produce only: leave out --schema".into());
        }
        crate::bench_tls::enable()?;
    }
    if let Some(kind) = args.schema {
        return crate::http_schema::run(&args, kind);
    }
    println!(
        "depot-bench http: {} connections, {} B JSON messages, durable acks{}",
        args.connections,
        args.payload_bytes,
        if args.tls { ", over HTTPS (TLS)" } else { "" }
    );
    println!("machine: {}", machine());
    let single = bytes::Bytes::from(message(args.payload_bytes));
    let batched = bytes::Bytes::from(batch(args.batch_size, args.payload_bytes));
    let json = |url: String, body: &bytes::Bytes| Target {
        url,
        token: None,
        content_type: JSON,
        body: body.clone(),
    };

    let ceiling_batch = if args.single_only {
        None
    } else {
        Some(on_bare_server(|url, watched| {
            let batch = load(&args, &json(url, &batched), None, watched)?;
            report(
                &format!(
                    "ceiling (bare actix-web), {}-message bodies",
                    args.batch_size
                ),
                &batch,
                1,
                None,
            );
            Ok(batch)
        })?)
    };

    let workdir = tempfile::Builder::new()
        .prefix("depot-bench-http-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    for mode in args.modes() {
        let dir = |what: &str| workdir.path().join(format!("{mode}-{what}"));
        let single_target = |addr, token| Target {
            token: Some(token),
            ..json(
                format!(
                    "{}://{addr}/stations/bench.single/produce/single",
                    crate::bench_tls::scheme()
                ),
                &single,
            )
        };
        println!(
            "produce/single, {mode} broker, against the bare actix-web ceiling, {} B bodies:",
            args.payload_bytes
        );
        let (rounds, flushes) =
            on_fresh_proxy(&args, mode, &dir("single"), |addr, token, watched| {
                on_bare_server(|url, bare| {
                    let rounds = rounds_against_ceiling(
                        &args,
                        &single_target(addr, token),
                        watched,
                        &json(url, &single),
                        bare,
                        &mode.to_string(),
                    )?;
                    Ok((rounds, FlushStats::read(addr)?))
                })
            })?;
        report_rounds(&format!("produce/single, {mode} broker"), &rounds);
        let run = rounds.total;
        println!("  {flushes}");
        let Some(ceiling_batch) = &ceiling_batch else {
            continue;
        };
        let half = run.rate() / 2.0;
        let (paced, flushes) =
            on_fresh_proxy(&args, mode, &dir("paced"), |addr, token, watched| {
                let run = load(&args, &single_target(addr, token), Some(half), watched)?;
                Ok((run, FlushStats::read(addr)?))
            })?;
        report(
            &format!("produce/single, {mode} broker, paced at half the peak ({half:.0} req/s)"),
            &paced,
            1,
            None,
        );
        println!("  {flushes}");
        // The machine's own tail at that rate, for comparison.
        let bare_paced =
            on_bare_server(|url, watched| load(&args, &json(url, &single), Some(half), watched))?;
        report(
            &format!("ceiling (bare actix-web), paced at {half:.0} req/s"),
            &bare_paced,
            1,
            None,
        );
        let run = on_fresh_proxy(&args, mode, &dir("batch"), |addr, token, watched| {
            let target = Target {
                token: Some(token),
                ..json(
                    format!(
                        "{}://{addr}/stations/bench.batch/produce/batch",
                        crate::bench_tls::scheme()
                    ),
                    &batched,
                )
            };
            load(&args, &target, None, watched)
        })?;
        report(
            &format!("produce/batch of {}, {mode} broker", args.batch_size),
            &run,
            args.batch_size,
            Some((ceiling_batch, "ceiling")),
        );
    }
    Ok(())
}
