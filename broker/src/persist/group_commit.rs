//! Group commit: many writers, one fsync.
//!
//! A writer applies its sled batch (in memory), then asks [`GroupCommit`] for
//! durability and waits. One dedicated thread takes every waiter registered so
//! far, flushes sled once, and releases them all. Writers that arrive during a
//! flush form the next group. So under load there is one fsync per group, not
//! per message, and an idle broker adds no delay: a lone writer is flushed
//! at once.
//!
//! Correctness rests on one fact: a waiter registers *after* its batch is
//! applied, and the flush that releases it *starts after* it registered, so
//! the flush covers the batch.

use std::{
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use prometheus::{Histogram, HistogramOpts, Registry};
use tokio::sync::oneshot;

use crate::{config::FsyncPolicy, error::BrokerError};

/// What to run once a group is durable (or the flush failed). Runs on the
/// flushing thread, so it must be quick: advance a head, send answers.
type Waiter = Box<dyn FnOnce(Result<(), BrokerError>) + Send>;

#[derive(Default)]
struct Queue {
    waiters: Vec<Waiter>,
    shutting_down: bool,
}

/// Flush time buckets in seconds, from 0.1 ms to 1 s.
const FLUSH_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    db: sled::Db,
    /// How long each flush of the flushing thread took: every durable
    /// acknowledgement waits for one, so the disk's slow moments show here
    /// first (and its count shows that writers share flushes).
    flush_seconds: Histogram,
}

impl Shared {
    fn flush(&self) -> sled::Result<usize> {
        let started = Instant::now();
        let flushed = self.db.flush();
        self.flush_seconds.observe(started.elapsed().as_secs_f64());
        flushed
    }
}

/// Hands out durability; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    policy: FsyncPolicy,
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl GroupCommit {
    /// Starts the flushing thread the policy needs (none for `never`), and
    /// registers its flush time histogram (`flush_seconds`) in `metrics`.
    pub fn start(db: sled::Db, policy: FsyncPolicy, metrics: &Registry) -> Self {
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "flush_seconds",
                "Time each flush to disk (sled's write and fsync) took; a durable acknowledgement waits for one",
            )
            .buckets(FLUSH_BUCKETS.to_vec()),
        )
        .expect("valid histogram options");
        metrics
            .register(Box::new(flush_seconds.clone()))
            .expect("the flush metric is registered once");
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
            db,
            flush_seconds,
        });
        let thread = match policy {
            FsyncPolicy::Always => Some(spawn("depot-group-commit", {
                let shared = shared.clone();
                move || run_group_commit(&shared)
            })),
            FsyncPolicy::Interval(every) => Some(spawn("depot-interval-flush", {
                let shared = shared.clone();
                move || run_interval_flush(&shared, every)
            })),
            FsyncPolicy::Never => None,
        };
        Self {
            policy,
            shared,
            thread: Arc::new(Mutex::new(thread)),
        }
    }

    /// Runs `on_durable` once everything applied to sled before this call is
    /// durable as the policy defines it: on disk for `always` (then it runs
    /// on the flushing thread, sparing a hop through the caller's thread),
    /// at once otherwise.
    pub fn commit_then(&self, on_durable: impl FnOnce(Result<(), BrokerError>) + Send + 'static) {
        if self.policy != FsyncPolicy::Always {
            return on_durable(Ok(()));
        }
        let mut queue = self.shared.queue.lock().expect("group commit lock");
        if queue.shutting_down {
            drop(queue);
            return on_durable(Err(BrokerError::ShuttingDown));
        }
        queue.waiters.push(Box::new(on_durable));
        self.shared.wake.notify_one();
    }

    /// Resolves when everything applied to sled before this call is durable.
    pub fn commit(&self) -> impl Future<Output = Result<(), BrokerError>> + use<> {
        let (sender, receiver) = oneshot::channel();
        self.commit_then(move |outcome| {
            let _ = sender.send(outcome);
        });
        async move { receiver.await.unwrap_or(Err(BrokerError::ShuttingDown)) }
    }

    /// Resolves when everything applied before is on disk, whatever the
    /// policy: for station definitions and users, which change rarely and
    /// whose loss would lose whole stations.
    pub fn commit_metadata(&self) -> impl Future<Output = Result<(), BrokerError>> + use<> {
        let always = (self.policy == FsyncPolicy::Always).then(|| self.commit());
        let db = self.shared.db.clone();
        async move {
            match always {
                Some(commit) => commit.await,
                None => db.flush_async().await.map(drop).map_err(BrokerError::from),
            }
        }
    }

    /// Flushes done by the flushing thread so far.
    pub fn flushes(&self) -> u64 {
        self.shared.flush_seconds.get_sample_count()
    }

    /// Flushes what is left and stops the thread. Idempotent.
    pub fn shutdown(&self) {
        self.shared
            .queue
            .lock()
            .expect("group commit lock")
            .shutting_down = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.lock().expect("thread lock").take() {
            let _ = thread.join();
        }
        if let Err(e) = self.shared.db.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .expect("spawn flush thread")
}

fn run_group_commit(shared: &Shared) {
    loop {
        let group = {
            let mut queue = shared.queue.lock().expect("group commit lock");
            while queue.waiters.is_empty() && !queue.shutting_down {
                queue = shared.wake.wait(queue).expect("group commit lock");
            }
            if queue.waiters.is_empty() {
                return;
            }
            std::mem::take(&mut queue.waiters)
        };
        let outcome = shared.flush().map(drop).map_err(|e| e.to_string());
        if let Err(reason) = &outcome {
            tracing::error!(%reason, waiters = group.len(), "group commit flush failed");
        }
        for waiter in group {
            waiter(
                outcome
                    .clone()
                    .map_err(|reason| BrokerError::FlushFailed { reason }),
            );
        }
    }
}

fn run_interval_flush(shared: &Shared, every: Duration) {
    let mut queue = shared.queue.lock().expect("group commit lock");
    while !queue.shutting_down {
        queue = shared
            .wake
            .wait_timeout(queue, every)
            .expect("group commit lock")
            .0;
        drop(queue);
        if let Err(e) = shared.flush() {
            tracing::error!(error = %e, "interval flush failed");
        }
        queue = shared.queue.lock().expect("group commit lock");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_share_flushes_and_all_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let metrics = Registry::new();
        let commit = GroupCommit::start(db.clone(), FsyncPolicy::Always, &metrics);
        let waits: Vec<_> = (0..100u32)
            .map(|i| {
                db.insert(i.to_be_bytes(), &[1]).unwrap();
                commit.commit()
            })
            .collect();
        for wait in waits {
            wait.await.unwrap();
        }
        assert!(
            commit.flushes() < 50,
            "100 writers shared {} flushes",
            commit.flushes()
        );
        commit.shutdown();
        assert!(matches!(
            commit.commit().await,
            Err(BrokerError::ShuttingDown)
        ));
    }
}
