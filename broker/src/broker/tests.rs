//! A broker on threads lent by its host ([`Broker::open_on`]).

use actix::Arbiter;

use super::*;
use crate::station::NewMessage;

fn config(dir: &std::path::Path) -> BrokerConfig {
    let mut config = BrokerConfig::new(dir, "127.0.0.1:0");
    config.root_password = Some(TEST_ROOT_PASSWORD.into());
    config
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
    let lent = Arbiter::new();
    let broker = Broker::open_on(config(dir.path()), vec![lent.handle()])
        .unwrap()
        .broker;
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
    let lent = Arbiter::new();
    let broker = Broker::open_on(config(dir.path()), vec![lent.handle()])
        .unwrap()
        .broker;
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
