//! Closed-loop load: producers that each send one request, wait for its
//! answer and send the next, spread over a few load generator threads, with
//! the clock started once every connection is open.

use std::{
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::{child, latency};

/// One closed-loop sender over some connection.
pub trait Producer: Send + 'static {
    /// Sends one request and waits for its answer; returns how many
    /// messages it carried.
    fn round_trip(&mut self) -> impl Future<Output = Result<u64, String>> + Send;
}

/// Messages sent and their acknowledgement latencies, over a measured time.
pub struct PhaseResult {
    pub messages: u64,
    pub seconds: f64,
    pub latency: Histogram<u64>,
    /// The server's CPU time over the measured time, when it could be read.
    pub server_cpu_seconds: Option<f64>,
}

impl PhaseResult {
    pub fn empty(duration: Duration) -> Self {
        Self {
            messages: 0,
            seconds: duration.as_secs_f64(),
            latency: latency::new_histogram(),
            server_cpu_seconds: None,
        }
    }

    /// The server's CPU time per message, in microseconds.
    pub fn server_cpu_per_message_us(&self) -> Option<f64> {
        let seconds = self.server_cpu_seconds?;
        (self.messages > 0).then(|| seconds * 1e6 / self.messages as f64)
    }

    /// Adds one producer's (or one thread's) messages and latencies.
    pub fn add(&mut self, messages: u64, latency: &Histogram<u64>) -> Result<(), String> {
        self.messages += messages;
        self.latency.add(latency).map_err(|e| e.to_string())
    }

    /// Adds another measured run of the same load: its messages, time,
    /// latencies and server CPU.
    pub fn absorb(&mut self, other: PhaseResult) -> Result<(), String> {
        self.seconds += other.seconds;
        self.server_cpu_seconds = match (self.server_cpu_seconds, other.server_cpu_seconds) {
            (Some(mine), Some(theirs)) => Some(mine + theirs),
            _ => None,
        };
        self.add(other.messages, &other.latency)
    }

    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
}

/// How long producers run: `warmup` unmeasured, then `duration` measured.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
}

/// Runs `producers` closed loops over `threads` threads for warmup +
/// duration. On each thread, `connect(count)` opens the connections and
/// returns that thread's `count` producers. With the `server` process's id,
/// its CPU time over the measured time is read too.
///
/// Each thread runs a single-threaded runtime (as `depot-bench http` does):
/// a connection's tasks (its producer, its reader and its writer) then never
/// wake one another across threads, which on a work-stealing runtime cost
/// the load generator context switches the server competes with on the same
/// cores.
pub fn run<P, C, F>(
    threads: usize,
    producers: usize,
    timing: Timing,
    connect: C,
    server: Option<u32>,
) -> Result<PhaseResult, String>
where
    P: Producer,
    C: Fn(usize) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Vec<P>, String>>,
{
    let threads = threads.clamp(1, producers.max(1));
    let per_thread = producers.div_ceil(threads);
    // The producer threads and this one, which reads the server's CPU time.
    let all_connected = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let count = per_thread.min(producers.saturating_sub(thread * per_thread));
            let (connect, all_connected) = (connect.clone(), all_connected.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let connected = match &runtime {
                    Ok(runtime) => runtime.block_on(connect(count)),
                    Err(e) => Err(e.to_string()),
                };
                // Every thread reaches the barrier, connected or not, so
                // that a failure cannot leave the others waiting.
                all_connected.wait();
                let (runtime, producers) = (runtime.map_err(|e| e.to_string())?, connected?);
                runtime.block_on(run_thread(producers, timing))
            })
        })
        .collect();
    all_connected.wait();
    let server_cpu_seconds = server.and_then(|pid| {
        let measure_from = Instant::now() + timing.warmup;
        std::thread::sleep(timing.warmup);
        let before = child::cpu_seconds(pid)?;
        std::thread::sleep(
            (measure_from + timing.duration).saturating_duration_since(Instant::now()),
        );
        Some(child::cpu_seconds(pid)? - before)
    });
    let mut result = PhaseResult::empty(timing.duration);
    result.server_cpu_seconds = server_cpu_seconds;
    for handle in handles {
        let part = handle.join().map_err(|_| "a producer thread panicked")??;
        result.add(part.messages, &part.latency)?;
    }
    Ok(result)
}

async fn run_thread<P: Producer>(producers: Vec<P>, timing: Timing) -> Result<PhaseResult, String> {
    let measure_from = Instant::now() + timing.warmup;
    let stop_at = measure_from + timing.duration;
    let tasks: Vec<_> = producers
        .into_iter()
        .map(|producer| tokio::spawn(send_until(producer, measure_from, stop_at)))
        .collect();
    let mut result = PhaseResult::empty(timing.duration);
    for task in tasks {
        let (sent, histogram) = task.await.map_err(|e| e.to_string())??;
        result.add(sent, &histogram)?;
    }
    Ok(result)
}

/// One producer's closed loop: sends, waits for the answer, repeats.
async fn send_until<P: Producer>(
    mut producer: P,
    measure_from: Instant,
    stop_at: Instant,
) -> Result<(u64, Histogram<u64>), String> {
    let mut histogram = latency::new_histogram();
    let mut sent = 0u64;
    loop {
        let sent_at = Instant::now();
        if sent_at >= stop_at {
            return Ok((sent, histogram));
        }
        let messages = producer.round_trip().await?;
        if sent_at >= measure_from {
            latency::record(&mut histogram, sent_at.elapsed());
            sent += messages;
        }
    }
}
