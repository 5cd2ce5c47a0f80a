//! `depot-bench ws`: WebSocket fan-out. A proxy with its embedded broker
//! (child processes); N WebSocket connections to it, each subscribed to one
//! station; then messages produced at a fixed rate, each pushed to all N.
//! Measures pushed frames per second, how long each message takes to reach
//! every connection (broadcast-to-all latency), and the proxy's RSS; the
//! same against a bare actix-ws server broadcasting to the same clients
//! (the ceiling, in the same run) gives the ratios.
//!
//! The clients run on their own threads (actix systems), so the load
//! generator shares the machine with the proxy, as every other benchmark.

use std::{
    collections::HashMap,
    rc::Rc,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use depot_broker::client::BrokerClient;
use depot_schemas::wire::NewMessage;

use crate::{
    child::{ChildServer, Program, rss_bytes},
    http::{Mode, start_proxy, token},
    latency,
    wire::machine,
};

#[derive(Debug, Args)]
pub struct WsArgs {
    /// WebSocket connections, all subscribed to the broadcast station.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Messages broadcast (each to every connection).
    #[arg(long, default_value_t = 100)]
    messages: u64,
    /// Messages produced per second.
    #[arg(long, default_value_t = 10)]
    rate: u64,
    /// Client threads.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
}

const PASSWORD: &str = crate::http::PASSWORD;
const STATION: &str = "bench.broadcast";
/// Connections opened at once.
const OPENING: usize = 256;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// What one client thread saw: per message (by offset), how many
/// connections got it and the latest arrival's latency (µs).
type Arrivals = Arc<Mutex<HashMap<u64, (u64, u64)>>>;

struct Shared {
    subscribed: AtomicU64,
    frames: AtomicU64,
    failed: AtomicU64,
}

/// What the clients talk to.
enum Target {
    /// The bare actix-ws server: broadcast with `POST /broadcast`.
    Bare(std::net::SocketAddr),
    /// Depot: a proxy, and its broker to produce to.
    Depot {
        proxy: std::net::SocketAddr,
        broker: std::net::SocketAddr,
        jwt: String,
    },
}

/// One measurement.
struct Figures {
    opened_in: Duration,
    rss_idle: u64,
    rss_connected: u64,
    rss_peak: u64,
    produced_in: Duration,
    all_in: Duration,
    frames: u64,
    latency: Histogram<u64>,
}

impl Figures {
    fn frames_per_second(&self) -> f64 {
        self.frames as f64 / self.all_in.as_secs_f64()
    }
}

pub fn run(args: WsArgs) -> Result<(), String> {
    println!(
        "depot-bench ws: {} connections to one server, {} messages at {}/s, each to every connection",
        args.connections, args.messages, args.rate
    );
    println!("machine: {}", machine());

    let bare = ChildServer::start(
        Program::Bench,
        &["bare-ws".into(), "--listen".into(), "127.0.0.1:0".into()],
        &[],
        &["bare-ws"],
    )?;
    let ceiling = measure(&args, &Target::Bare(bare.addrs[0]), bare.pid())?;
    drop(bare);
    report(
        "ceiling (bare actix-ws, nothing behind it)",
        &args,
        &ceiling,
        None,
    );

    let workdir = tempfile::Builder::new()
        .prefix("depot-bench-ws-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let (_, proxy) = start_proxy(Mode::Embedded, workdir.path(), &[])?;
    let (broker, proxy_addr) = (proxy.addrs[0], proxy.addrs[1]);
    let jwt = token(proxy_addr)?;
    actix_rt::System::new().block_on(async {
        let client = BrokerClient::connect(broker, "root", PASSWORD)
            .await
            .map_err(|e| e.to_string())?;
        client
            .create_station(STATION, Default::default())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })?;
    let target = Target::Depot {
        proxy: proxy_addr,
        broker,
        jwt,
    };
    let depot = measure(&args, &target, proxy.pid())?;
    report(
        "depot-proxy (embedded broker)",
        &args,
        &depot,
        Some(&ceiling),
    );
    Ok(())
}

fn report(label: &str, args: &WsArgs, figures: &Figures, ceiling: Option<&Figures>) {
    let ratio = |value: f64, reference: f64| {
        ceiling.map_or(String::new(), |_| {
            format!(" = {:.2} x ceiling", value / reference)
        })
    };
    let reference = ceiling.unwrap_or(figures);
    println!("{label}:");
    println!(
        "  opened and subscribed {} connections in {:.2?}",
        args.connections, figures.opened_in
    );
    println!(
        "  pushed {} frames: {:.0} frames/s{} (produced for {:.2?}, all arrived after {:.2?})",
        figures.frames,
        figures.frames_per_second(),
        ratio(figures.frames_per_second(), reference.frames_per_second()),
        figures.produced_in,
        figures.all_in
    );
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64;
    println!(
        "  broadcast-to-all latency (to the last of {} connections), {} messages: {}{}",
        args.connections,
        figures.latency.len(),
        latency::summary(&figures.latency),
        ceiling.map_or(String::new(), |c| format!(
            " (p99 {:.2} x the ceiling's)",
            p99(&figures.latency) / p99(&c.latency)
        ))
    );
    println!(
        "  server RSS: {} idle, {} with {} connections, {} at the peak of the broadcast",
        bytesize::ByteSize(figures.rss_idle),
        bytesize::ByteSize(figures.rss_connected),
        args.connections,
        bytesize::ByteSize(figures.rss_peak)
    );
}

fn measure(args: &WsArgs, target: &Target, pid: u32) -> Result<Figures, String> {
    let rss_idle = rss_bytes(pid).unwrap_or(0);
    let url = match target {
        Target::Bare(addr) => format!("ws://{addr}/ws"),
        Target::Depot { proxy, jwt, .. } => format!("ws://{proxy}/ws?authorization={jwt}"),
    };
    let shared = Arc::new(Shared {
        subscribed: AtomicU64::new(0),
        frames: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let mut arrivals = Vec::new();
    let threads = args.client_threads.max(1);
    let per_thread = args.connections.div_ceil(threads);
    let opening_started = Instant::now();
    for thread in 0..threads {
        let count = per_thread.min(args.connections.saturating_sub(thread * per_thread));
        let seen: Arrivals = Arc::default();
        arrivals.push(seen.clone());
        let (shared, url) = (shared.clone(), url.clone());
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(clients(url, count, shared, seen));
        });
    }
    let limit = Instant::now() + Duration::from_secs(300);
    while shared.subscribed.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < args.connections as u64
    {
        if Instant::now() > limit {
            return Err("connections did not open in 5 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let failed = shared.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} connections failed to open or subscribe"));
    }
    let opened_in = opening_started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let rss_connected = rss_bytes(pid).unwrap_or(0);

    let expected = args.messages * args.connections as u64;
    let (produced_in, all_in, rss_peak) = actix_rt::System::new().block_on(async {
        let producer = match target {
            Target::Depot { broker, .. } => Some(
                BrokerClient::connect(*broker, "root", PASSWORD)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Target::Bare(_) => None,
        };
        let http = awc::Client::default();
        let started = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
        let mut due = Instant::now();
        let mut rss_peak = 0;
        for i in 0..args.messages {
            due += interval;
            tokio::time::sleep_until(due.into()).await;
            let data = json!({ "sent_us": now_us(), "n": i });
            match (target, &producer) {
                (Target::Depot { .. }, Some(client)) => {
                    let message = NewMessage {
                        content_type: "application/json".into(),
                        payload: data.to_string().into(),
                        ..Default::default()
                    };
                    client
                        .produce(STATION, vec![message])
                        .await
                        .map_err(|e| e.to_string())?;
                }
                (Target::Bare(addr), _) => {
                    let frame = json!({ "action": "message", "offset": i, "data": data });
                    http.post(format!("http://{addr}/broadcast"))
                        .send_body(frame.to_string())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                (Target::Depot { .. }, None) => unreachable!("a producer for Depot"),
            }
            if i % args.rate.max(1) == 0 {
                rss_peak = rss_peak.max(rss_bytes(pid).unwrap_or(0));
            }
        }
        let produced_in = started.elapsed();
        while shared.frames.load(Ordering::Relaxed) < expected {
            if started.elapsed() > Duration::from_secs(600) {
                return Err(format!(
                    "only {} of {expected} frames arrived",
                    shared.frames.load(Ordering::Relaxed)
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        rss_peak = rss_peak.max(rss_bytes(pid).unwrap_or(0));
        Ok::<_, String>((produced_in, started.elapsed(), rss_peak))
    })?;

    // Broadcast-to-all: per message, when its last connection got it.
    let mut merged: HashMap<u64, (u64, u64)> = HashMap::new();
    for seen in &arrivals {
        for (offset, (count, latest)) in seen.lock().expect("arrivals").iter() {
            let entry = merged.entry(*offset).or_default();
            entry.0 += count;
            entry.1 = entry.1.max(*latest);
        }
    }
    let mut histogram: Histogram<u64> = latency::new_histogram();
    for (count, latest) in merged.values() {
        if *count == args.connections as u64 {
            latency::record(&mut histogram, Duration::from_micros(*latest));
        }
    }
    Ok(Figures {
        opened_in,
        rss_idle,
        rss_connected,
        rss_peak,
        produced_in,
        all_in,
        frames: expected,
        latency: histogram,
    })
}

/// Opens `count` connections (a few hundred at a time), subscribes each,
/// then reads what they are pushed, answering pings.
async fn clients(url: String, count: usize, shared: Arc<Shared>, seen: Arrivals) {
    let url = Rc::new(url);
    let opening = Rc::new(tokio::sync::Semaphore::new(OPENING));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let (url, opening, shared, seen) =
            (url.clone(), opening.clone(), shared.clone(), seen.clone());
        tasks.push(actix_rt::spawn(async move {
            let permit = opening.acquire().await.expect("open");
            let Some(mut socket) = subscribe(&url).await else {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            drop(permit);
            shared.subscribed.fetch_add(1, Ordering::Relaxed);
            while let Some(Ok(frame)) = socket.next().await {
                match frame {
                    awc::ws::Frame::Text(bytes) => {
                        let Ok(frame) = serde_json::from_slice::<Value>(&bytes) else {
                            continue;
                        };
                        if frame["action"] != "message" {
                            continue;
                        }
                        let sent = frame["data"]["sent_us"].as_u64().unwrap_or(0);
                        let offset = frame["offset"].as_u64().unwrap_or(0);
                        let took = now_us().saturating_sub(sent);
                        {
                            let mut seen = seen.lock().expect("arrivals");
                            let entry = seen.entry(offset).or_default();
                            entry.0 += 1;
                            entry.1 = entry.1.max(took);
                        }
                        shared.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    awc::ws::Frame::Ping(bytes) => {
                        let _ = socket.send(awc::ws::Message::Pong(bytes)).await;
                    }
                    _ => {}
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

type Socket = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

/// Connects, reads the greeting, subscribes from the latest message, and
/// reads the confirmation.
async fn subscribe(url: &str) -> Option<Socket> {
    let (_, mut socket) = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .ws(url)
        .connect()
        .await
        .ok()?;
    let subscribe = json!({"action": "subscribe", "station": STATION, "from": "latest"});
    socket
        .send(awc::ws::Message::Text(subscribe.to_string().into()))
        .await
        .ok()?;
    while let Some(Ok(frame)) = socket.next().await {
        if let awc::ws::Frame::Text(bytes) = frame {
            let frame: Value = serde_json::from_slice(&bytes).ok()?;
            match frame["action"].as_str() {
                Some("subscribed") => return Some(socket),
                Some("connected") => continue,
                _ => return None,
            }
        }
    }
    None
}
