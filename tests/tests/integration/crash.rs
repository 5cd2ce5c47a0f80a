//! The crash test: SIGKILL the broker under concurrent load, restart it on
//! the same directory, and check that every acknowledged message is there,
//! intact, at its offset, with offsets dense. Several kill cycles.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::harness::{PATIENCE, TestBroker, fetch_all, json_message, stored_offset};

const STATION: &str = "crash.test";
const PRODUCERS: usize = 8;
const CYCLES: usize = 3;
/// Acknowledgements to collect in a cycle before the kill.
const ACKS_BEFORE_KILL: usize = 1500;

/// Acknowledged messages: offset -> payload.
type Acked = std::sync::Mutex<HashMap<u64, Vec<u8>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    let mut broker = TestBroker::start();
    let acked: Arc<Acked> = Arc::default();

    for cycle in 0..CYCLES {
        let count = Arc::new(AtomicUsize::new(0));
        let mut producers = Vec::new();
        for p in 0..PRODUCERS {
            let client = broker.client().await;
            let (acked, count) = (acked.clone(), count.clone());
            producers.push(tokio::spawn(async move {
                for i in 0.. {
                    // Alternate single messages and small batches.
                    let size = if i % 2 == 0 { 1 } else { 10 };
                    let payloads: Vec<String> = (0..size)
                        .map(|k| format!("{{\"cycle\":{cycle},\"p\":{p},\"i\":{i},\"k\":{k}}}"))
                        .collect();
                    let messages = payloads.iter().map(|b| json_message(b)).collect();
                    let Ok(outcomes) = client.produce(STATION, messages).await else {
                        return; // the broker died under us
                    };
                    let mut acked = acked.lock().unwrap();
                    for (outcome, payload) in outcomes.iter().zip(payloads) {
                        acked.insert(stored_offset(outcome), payload.into_bytes());
                    }
                    count.fetch_add(size, Ordering::Relaxed);
                }
            }));
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while count.load(Ordering::Relaxed) < ACKS_BEFORE_KILL {
            assert!(
                tokio::time::Instant::now() < deadline,
                "producers made no progress"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        broker.kill();
        for producer in producers {
            producer.await.unwrap();
        }

        broker = broker.restart(&[]);
        let client = broker.client().await;
        let stored = fetch_all(&client, STATION, 0).await;
        let by_offset: HashMap<u64, &[u8]> =
            stored.iter().map(|m| (m.offset, &m.payload[..])).collect();
        let offsets: Vec<u64> = stored.iter().map(|m| m.offset).collect();
        assert_eq!(
            offsets,
            (0..stored.len() as u64).collect::<Vec<_>>(),
            "cycle {cycle}: offsets are dense"
        );
        {
            let acked = acked.lock().unwrap();
            assert!(acked.len() >= ACKS_BEFORE_KILL * (cycle + 1));
            for (offset, payload) in acked.iter() {
                assert_eq!(
                    by_offset.get(offset).copied(),
                    Some(&payload[..]),
                    "cycle {cycle}: acknowledged message at offset {offset} is intact"
                );
            }
        }
        let after = b"{\"after\":true}";
        let next = client
            .produce(
                STATION,
                vec![json_message(std::str::from_utf8(after).unwrap())],
            )
            .await
            .unwrap();
        let offset = stored_offset(&next[0]);
        assert_eq!(
            offset,
            stored.len() as u64,
            "cycle {cycle}: the station goes on"
        );
        acked.lock().unwrap().insert(offset, after.to_vec());
    }
}
