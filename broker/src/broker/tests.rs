//! A broker on threads lent by its host ([`Broker::open_on`]).

use actix::Arbiter;

use super::*;
use crate::station::NewMessage;

/// A test broker on `dir` whose only worker is a thread the test lends it.
fn open_on_a_lent_thread(dir: &std::path::Path) -> (Broker, Arbiter) {
    let lent = Arbiter::new();
    let broker = Broker::open_on(Broker::test_config(dir), vec![lent.handle()])
        .expect("a test broker opens")
        .broker;
    (broker, lent)
}

fn message() -> NewMessage {
    NewMessage {
        content_type: "text/plain".into(),
        payload: "on a lent thread".into(),
        ..Default::default()
    }
}

#[actix_rt::test]
async fn stations_run_on_the_lent_threads() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, lent) = open_on_a_lent_thread(dir.path());
    let root = broker.principal("root").unwrap();
    broker
        .produce(&root, "lent", vec![message()])
        .await
        .unwrap();

    // Only the station's actor stops with the lent thread: had it run
    // anywhere else, it would still answer.
    lent.stop();
    lent.join().unwrap();
    assert!(
        broker
            .produce(&root, "lent", vec![message()])
            .await
            .is_err(),
        "the station's actor outlived the thread it was lent"
    );
    broker.shutdown();
}

#[actix_rt::test]
async fn shutdown_leaves_the_lent_threads_running() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, lent) = open_on_a_lent_thread(dir.path());
    broker.shutdown();

    let (ran, answer) = tokio::sync::oneshot::channel();
    assert!(lent.spawn(async move {
        let _ = ran.send(());
    }));
    answer
        .await
        .expect("the lent thread still runs its host's work");
    lent.stop();
}
