//! A work queue under churn: workers that acknowledge, give back, or drop
//! (as a crashed worker would) what they lease, a producer adding work
//! meanwhile, and the broker killed halfway. Whatever happens, no message
//! is handed to a worker while another still holds it, no acknowledged
//! message is handed out again (the kill included), and the consumer ends
//! with every message acknowledged.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use depot_broker::client::{BrokerClient, ClientResult};
use depot_schemas::wire;

use crate::harness::{ROOT_PASSWORD, TestBroker, json_message};

const WORKERS: u64 = 4;
const LEASE: Duration = Duration::from_millis(300);
/// Messages stored before the workers start, and added while they run.
const FIRST: u64 = 1_000;
const TOTAL: u64 = 2_000;

/// What the workers saw, in the client's time.
#[derive(Default)]
struct Journal {
    /// Per offset and delivery: when the fetch that got it was sent and
    /// when its answer came.
    handouts: HashMap<(u64, u32), (Instant, Instant)>,
    /// Per offset and delivery: when a worker sent the give-back.
    given_back: HashMap<(u64, u32), Instant>,
    /// The furthest position an acknowledgement's answer reported.
    acked_position: u64,
    /// Messages acknowledged (the position moves in jumps: a dropped
    /// message holds it until its lease ends).
    acked: u64,
    /// When the answer to each message's acknowledgement came.
    acknowledged: HashMap<u64, Instant>,
}

impl Journal {
    /// No two workers held a message at once: each delivery of an offset
    /// came once, and only after the one before ended. The client cannot
    /// see the broker's clock, so this checks what must hold if it did:
    /// delivery `d + 1` arrived no sooner than delivery `d`'s fetch was
    /// sent plus the lease, or than `d` was given back.
    fn check_exclusive(&self) {
        for (&(offset, deliveries), &(sent, _)) in &self.handouts {
            if let Some(&acked) = self.acknowledged.get(&offset) {
                assert!(
                    sent < acked,
                    "offset {offset}: handed out (delivery {deliveries}) after its acknowledgement"
                );
            }
        }
        for (&(offset, deliveries), &(_, arrived)) in &self.handouts {
            if deliveries == 1 {
                continue;
            }
            let previous = (offset, deliveries - 1);
            let (sent, _) = self.handouts.get(&previous).unwrap_or_else(|| {
                panic!("offset {offset}: delivery {deliveries} without the one before")
            });
            let ended = match self.given_back.get(&previous) {
                Some(&back) => back.min(*sent + LEASE),
                None => *sent + LEASE,
            };
            assert!(
                arrived >= ended,
                "offset {offset}: delivery {deliveries} came {:?} before delivery {} could end",
                ended - arrived,
                deliveries - 1
            );
        }
    }
}

/// One worker until its connection fails (the broker was killed) or the
/// station is done: per message, 80% acknowledged, 10% given back, 10%
/// dropped (its lease runs out).
async fn work(addr: SocketAddr, seed: u64, journal: Arc<Mutex<Journal>>) -> ClientResult<()> {
    let client = BrokerClient::connect(addr, "root", ROOT_PASSWORD).await?;
    let mut rng = fastrand::Rng::with_seed(seed);
    loop {
        let sent = Instant::now();
        let batch = client
            .fetch_leased(
                "jobs",
                "workers",
                rng.u32(1..=20),
                LEASE,
                Duration::from_millis(100),
            )
            .await?;
        let arrived = Instant::now();
        let (mut acks, mut back) = (Vec::new(), Vec::new());
        {
            let mut journal = journal.lock().unwrap();
            for message in &batch.messages {
                let key = (message.offset, message.deliveries);
                let repeated = journal.handouts.insert(key, (sent, arrived));
                assert!(repeated.is_none(), "delivery {key:?} handed out twice");
                match rng.u8(0..10) {
                    0 => {}
                    1 => back.push(wire::LeaseRef {
                        offset: message.offset,
                        deliveries: message.deliveries,
                    }),
                    _ => acks.push(message.offset),
                }
            }
            let now = Instant::now();
            for lease in &back {
                journal
                    .given_back
                    .insert((lease.offset, lease.deliveries), now);
            }
        }
        if !back.is_empty() {
            client
                .change_leases("jobs", "workers", back, Duration::ZERO)
                .await?;
        }
        if !acks.is_empty() {
            journal.lock().unwrap().acked += acks.len() as u64;
            let position = client.acknowledge("jobs", "workers", acks.clone()).await?;
            let now = Instant::now();
            let mut journal = journal.lock().unwrap();
            journal.acked_position = journal.acked_position.max(position.next_offset);
            journal
                .acknowledged
                .extend(acks.into_iter().map(|offset| (offset, now)));
            if position.next_offset == TOTAL {
                return Ok(());
            }
        }
    }
}

/// Produces single messages until the station holds `TOTAL` (or the
/// connection fails).
async fn produce_rest(client: BrokerClient) -> ClientResult<()> {
    loop {
        let head = client.describe_station("jobs").await?.next_offset;
        if head >= TOTAL {
            return Ok(());
        }
        let count = (TOTAL - head).min(50);
        let messages = (0..count).map(|n| json_message(&n.to_string())).collect();
        client.produce("jobs", messages).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_workers(
    addr: SocketAddr,
    seed: u64,
    journal: &Arc<Mutex<Journal>>,
) -> Vec<tokio::task::JoinHandle<ClientResult<()>>> {
    (0..WORKERS)
        .map(|n| tokio::spawn(work(addr, seed + n, journal.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_queue_under_churn_hands_out_each_message_to_one_worker_at_a_time() {
    let broker = TestBroker::start();
    let client = broker.client().await;
    client
        .create_station("jobs", Default::default())
        .await
        .unwrap();
    let messages = (0..FIRST).map(|n| json_message(&n.to_string())).collect();
    client.produce("jobs", messages).await.unwrap();

    // Workers and a producer, until the broker is killed under them.
    let before = Arc::new(Mutex::new(Journal::default()));
    let workers = spawn_workers(broker.addr, 1, &before);
    let producer = tokio::spawn(produce_rest(client));
    let acked = || before.lock().unwrap().acked;
    tokio::time::timeout(Duration::from_secs(30), async {
        while acked() < TOTAL / 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a third of the work done within 30 s");
    assert!(acked() < TOTAL, "killed while work is left");
    let broker = broker.restart(&[]);
    // The kill ends every worker (a panic in one fails the test here).
    for worker in workers {
        let _ = worker.await.unwrap();
    }
    let _ = producer.await.unwrap();
    let before = Arc::into_inner(before).unwrap().into_inner().unwrap();
    before.check_exclusive();
    assert!(before.acked_position > 0, "work got done before the kill");

    // The acknowledged position survived; the rest gets done.
    let client = broker.client().await;
    let position = client.list_consumers("jobs").await.unwrap()[0].next_offset;
    assert!(
        position >= before.acked_position,
        "position {position} after the kill, {} acknowledged before",
        before.acked_position
    );
    produce_rest(client.clone()).await.unwrap();
    let after = Arc::new(Mutex::new(Journal::default()));
    let workers = spawn_workers(broker.addr, 100, &after);
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let consumers = client.list_consumers("jobs").await.unwrap();
            if consumers[0].next_offset == TOTAL {
                return consumers[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every message acknowledged within a minute");
    assert_eq!(done.lag, 0);
    for worker in workers {
        worker.abort();
        if let Err(stopped) = worker.await {
            assert!(stopped.is_cancelled(), "{stopped}");
        }
    }
    let after = Arc::into_inner(after).unwrap().into_inner().unwrap();
    after.check_exclusive();
    let mut again: Vec<u64> = after
        .handouts
        .keys()
        .map(|&(offset, _)| offset)
        .filter(|offset| before.acknowledged.contains_key(offset))
        .collect();
    again.sort_unstable();
    again.dedup();
    assert!(
        again.is_empty(),
        "{} messages acknowledged before the kill were handed out after it, the first {:?}",
        again.len(),
        &again[..again.len().min(10)]
    );
}
