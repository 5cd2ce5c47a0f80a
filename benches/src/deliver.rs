//! `depot-bench deliver`: webhook delivery throughput and latency. A broker
//! child process, a local receiver that answers 200 (an actix-web server on
//! its own thread, counting deliveries and measuring produce-to-delivery
//! latency from a send time inside each payload).
//!
//! Phases: stored messages delivered to 1 and to 10 `concurrent`
//! subscriptions, to 1 `ordered` subscription; then latency with one
//! subscription while a producer sends at a fixed rate.

use std::{
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Args;
use hdrhistogram::Histogram;

use depot_broker::{client::BrokerClient, config::parse_duration};
use depot_schemas::wire::{self, NewMessage, create_subscription::Start};

use crate::{latency, wire::machine};

#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// Messages delivered in the throughput phases (to each subscription).
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Messages for the ordered phase.
    #[arg(long, default_value_t = 10_000)]
    ordered_messages: usize,
    /// Produce rate of the latency phase, messages per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    latency_duration: Duration,
}

const PASSWORD: &str = "depot-bench";

/// What the receiver has seen.
#[derive(Clone)]
struct Receiver {
    count: Arc<AtomicU64>,
    latency: Arc<Mutex<Histogram<u64>>>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

impl Receiver {
    /// Serves on a loopback port in its own thread; returns the URL.
    fn start() -> Result<(Self, String), String> {
        let receiver = Self {
            count: Arc::default(),
            latency: Arc::new(Mutex::new(latency::new_histogram())),
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}/hook",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let shared = receiver.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let receiver = shared.clone();
                    App::new().route(
                        "/hook",
                        web::post().to(move |body: web::Bytes| {
                            let receiver = receiver.clone();
                            async move {
                                receiver.saw(&body);
                                HttpResponse::Ok().finish()
                            }
                        }),
                    )
                })
                .workers(1)
                .listen(listener)
                .expect("listen")
                .run();
                let _ = server.await;
            })
        });
        Ok((receiver, url))
    }

    fn saw(&self, body: &[u8]) {
        self.count.fetch_add(1, Ordering::Relaxed);
        // Raw payloads: {"sent_us":N,...}; 0 means "not timed".
        let sent = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["sent_us"].as_u64())
            .unwrap_or(0);
        if sent > 0 {
            let elapsed = Duration::from_micros(now_us().saturating_sub(sent));
            latency::record(&mut self.latency.lock().expect("histogram"), elapsed);
        }
    }

    fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.latency.lock().expect("histogram").reset();
    }

    async fn wait_for(&self, count: u64, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        while self.count.load(Ordering::Relaxed) < count {
            if started.elapsed() > limit {
                return Err(format!(
                    "only {} of {count} deliveries after {limit:?}",
                    self.count.load(Ordering::Relaxed)
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(started.elapsed())
    }
}

fn message(sent_us: u64) -> NewMessage {
    NewMessage {
        content_type: "application/json".into(),
        payload: format!("{{\"sent_us\":{sent_us},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}").into(),
        ..Default::default()
    }
}

async fn fill(client: &BrokerClient, station: &str, count: usize) -> Result<(), String> {
    for start in (0..count).step_by(100) {
        let batch = (start..count.min(start + 100))
            .map(|_| message(0))
            .collect();
        client
            .produce(station, batch)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn subscribe(
    client: &BrokerClient,
    name: &str,
    station: &str,
    url: &str,
    ordered: bool,
    from: Option<u64>,
) -> Result<(), String> {
    let create = wire::CreateSubscription {
        name: name.into(),
        station: station.into(),
        url: url.into(),
        format: "raw".into(),
        ordered,
        start: from.map(Start::FromOffset),
        ..Default::default()
    };
    client
        .create_subscription(create)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The ceiling: a bare `awc` client on its own thread POSTing `n` such
/// payloads to the same receiver, `concurrency` at a time, nothing stored.
fn bare_posts(url: &str, n: usize, concurrency: usize) -> Result<Duration, String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .connector(awc::Connector::new().limit(concurrency))
                .finish();
            let body = message(0).payload;
            let started = Instant::now();
            let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
            let workers = (0..concurrency).map(|_| {
                let (client, url, body, next) =
                    (client.clone(), url.clone(), body.clone(), next.clone());
                async move {
                    while next.get() < n {
                        next.set(next.get() + 1);
                        let response = client
                            .post(&url)
                            .insert_header(("content-type", "application/json"))
                            .send_body(body.clone())
                            .await
                            .map_err(|e| e.to_string())?;
                        if !response.status().is_success() {
                            return Err(format!("the receiver answered {}", response.status()));
                        }
                    }
                    Ok::<(), String>(())
                }
            });
            for result in futures::future::join_all(workers).await {
                result?;
            }
            Ok(started.elapsed())
        })
    })
    .join()
    .map_err(|_| "the ceiling thread panicked".to_owned())?
}

pub fn run(args: DeliverArgs) -> Result<(), String> {
    println!(
        "depot-bench deliver: local receiver answering 200, raw payloads of ~100 B, concurrent subscriptions with 16 in flight"
    );
    println!("machine: {}", machine());
    let workdir = tempfile::Builder::new()
        .prefix("depot-bench-deliver-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let broker = crate::child::broker(workdir.path(), PASSWORD, &["--allow-private-urls".into()])?;
    let (receiver, url) = Receiver::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = BrokerClient::connect(broker.addrs[0], "root", PASSWORD)
            .await
            .map_err(|e| e.to_string())?;
        let limit = Duration::from_secs(300);
        let n = args.messages;
        let ceiling = bare_posts(&url, n, 16)?;
        let ceiling_rate = n as f64 / ceiling.as_secs_f64();
        println!(
            "ceiling: bare awc client, 16 in flight, same receiver, nothing stored: {n} posts in {ceiling:.2?}: {ceiling_rate:.0} posts/s"
        );
        receiver.reset();

        fill(&client, "bench.many", n).await?;
        subscribe(&client, "one", "bench.many", &url, false, Some(0)).await?;
        let took = receiver.wait_for(n as u64, limit).await?;
        let rate = n as f64 / took.as_secs_f64();
        println!(
            "1 concurrent subscription: {n} deliveries in {took:.2?}: {rate:.0} deliveries/s = {:.2} x ceiling",
            rate / ceiling_rate
        );
        client
            .delete_subscription("one")
            .await
            .map_err(|e| e.to_string())?;

        receiver.reset();
        for i in 0..10 {
            subscribe(
                &client,
                &format!("ten-{i}"),
                "bench.many",
                &url,
                false,
                Some(0),
            )
            .await?;
        }
        let took = receiver.wait_for(10 * n as u64, limit).await?;
        let rate = (10 * n) as f64 / took.as_secs_f64();
        println!(
            "10 concurrent subscriptions: {} deliveries in {took:.2?}: {rate:.0} deliveries/s = {:.2} x ceiling",
            10 * n,
            rate / ceiling_rate
        );
        for i in 0..10 {
            client
                .delete_subscription(&format!("ten-{i}"))
                .await
                .map_err(|e| e.to_string())?;
        }

        let m = args.ordered_messages;
        let one_by_one = bare_posts(&url, m, 1)?;
        let one_by_one_rate = m as f64 / one_by_one.as_secs_f64();
        println!(
            "ceiling: bare awc client, 1 in flight: {m} posts in {one_by_one:.2?}: {one_by_one_rate:.0} posts/s"
        );
        receiver.reset();
        fill(&client, "bench.ordered", m).await?;
        subscribe(&client, "ordered", "bench.ordered", &url, true, Some(0)).await?;
        let took = receiver.wait_for(m as u64, limit).await?;
        let rate = m as f64 / took.as_secs_f64();
        println!(
            "1 ordered subscription: {m} deliveries in {took:.2?}: {rate:.0} deliveries/s = {:.2} x the 1-in-flight ceiling",
            rate / one_by_one_rate
        );
        client
            .delete_subscription("ordered")
            .await
            .map_err(|e| e.to_string())?;

        receiver.reset();
        client
            .create_station("bench.latency", wire::StationSettings::default())
            .await
            .map_err(|e| e.to_string())?;
        subscribe(&client, "latency", "bench.latency", &url, false, None).await?;
        let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
        let total = (args.rate as f64 * args.latency_duration.as_secs_f64()) as u64;
        let mut due = Instant::now();
        for _ in 0..total {
            due += interval;
            tokio::time::sleep_until(due.into()).await;
            client
                .produce("bench.latency", vec![message(now_us())])
                .await
                .map_err(|e| e.to_string())?;
        }
        receiver.wait_for(total, limit).await?;
        let histogram = receiver.latency.lock().expect("histogram").clone();
        println!(
            "produce-to-delivery latency at {} msgs/s (durable produce, then delivery): {}",
            args.rate,
            latency::summary(&histogram)
        );
        Ok::<(), String>(())
    })
}
