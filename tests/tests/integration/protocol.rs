//! The wire protocol's session rules and its handling of bad input: each bad
//! frame gets a clear answer where framing allows, and never disturbs other
//! connections or stored data.

use std::time::Duration;

use depot_schemas::wire::{
    self, ErrorCode, ProtocolVersion, Request, request::Op, response::Result as Reply,
};
use prost::Message;

use crate::harness::{RawConnection, TestBroker, fetch_all, json_message};

fn error_of(reply: &Reply) -> (ErrorCode, String) {
    match reply {
        Reply::Error(e) => (ErrorCode::try_from(e.code).unwrap(), e.message.clone()),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn list() -> Op {
    Op::ListStations(wire::ListStations {})
}

#[tokio::test]
async fn requests_before_hello_and_authenticate_are_refused() {
    let broker = TestBroker::start();
    let mut raw = RawConnection::connect(broker.addr).await;
    let (code, _) = error_of(&raw.call(1, list()).await);
    assert_eq!(code, ErrorCode::Unauthenticated);
    assert!(matches!(
        raw.call(2, Op::Ping(wire::Ping::default())).await,
        Reply::Pong(_)
    ));

    let future = Op::Hello(wire::Hello {
        version: 99,
        client: "from-the-future".into(),
    });
    let (code, message) = error_of(&raw.call(3, future).await);
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(message.contains("version 1"), "{message}");

    let hello = Op::Hello(wire::Hello {
        version: ProtocolVersion::V1 as i32,
        client: "t".into(),
    });
    assert!(matches!(raw.call(4, hello).await, Reply::HelloOk(_)));
    let (code, _) = error_of(&raw.call(5, list()).await);
    assert_eq!(code, ErrorCode::Unauthenticated);

    let wrong = Op::Authenticate(wire::Authenticate {
        username: "root".into(),
        password: "nope".into(),
        ..Default::default()
    });
    let (code, message) = error_of(&raw.call(6, wrong).await);
    assert_eq!(code, ErrorCode::Unauthenticated);
    assert!(!message.contains("nope"), "the password is never echoed");
    let right = Op::Authenticate(wire::Authenticate {
        username: "root".into(),
        password: crate::harness::ROOT_PASSWORD.into(),
        ..Default::default()
    });
    assert!(matches!(raw.call(7, right).await, Reply::AuthenticateOk(_)));
    assert!(matches!(raw.call(8, list()).await, Reply::StationList(_)));
}

#[tokio::test]
async fn a_connection_that_does_not_open_its_session_in_time_is_closed() {
    let data = std::sync::Arc::new(tempfile::TempDir::new().unwrap());
    // Long enough for the open session's Hello and Authenticate to arrive
    // on a loaded machine (the deadline is only for their arrival).
    let broker = TestBroker::start_with(data, &["--handshake-timeout", "2s"]);
    let mut silent = RawConnection::connect(broker.addr).await;
    let mut half_open = RawConnection::connect(broker.addr).await;
    let hello = Op::Hello(wire::Hello {
        version: ProtocolVersion::V1 as i32,
        client: "t".into(),
    });
    assert!(matches!(half_open.call(1, hello).await, Reply::HelloOk(_)));
    let mut open = RawConnection::connect(broker.addr).await;
    open.open_session().await;

    for stalled in [&mut silent, &mut half_open] {
        let answer = stalled.receive().await.expect("a reason before closing");
        let (code, message) = error_of(&answer.result.expect("a result"));
        assert_eq!(code, ErrorCode::Unauthenticated);
        assert!(message.contains("within 2s"), "{message}");
        assert!(stalled.receive().await.is_none(), "then closed");
    }
    // An open session has no such deadline.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(matches!(open.call(3, list()).await, Reply::StationList(_)));
}

#[tokio::test]
async fn an_undecodable_frame_is_answered_and_the_connection_stays_usable() {
    let broker = TestBroker::start();
    let mut raw = broker.raw_session().await;
    raw.send_raw(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
    let response = raw.receive().await.expect("an answer");
    assert_eq!(response.id, 0, "the id of an undecodable frame is unknown");
    let (code, _) = error_of(response.result.as_ref().unwrap());
    assert_eq!(code, ErrorCode::UndecodableFrame);
    assert!(matches!(raw.call(9, list()).await, Reply::StationList(_)));
}

#[tokio::test]
async fn an_unknown_operation_is_answered_with_its_id() {
    let broker = TestBroker::start();
    let mut raw = broker.raw_session().await;
    // Field 99 is an operation from a newer protocol this broker lacks.
    let mut frame = Request {
        id: 77,
        ..Default::default()
    }
    .encode_to_vec();
    frame.extend_from_slice(&[0x9a, 0x06, 0x00]); // field 99, length-delimited, empty
    let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&frame);
    raw.send_raw(&bytes).await;
    let response = raw.receive().await.expect("an answer");
    assert_eq!(response.id, 77);
    let (code, _) = error_of(response.result.as_ref().unwrap());
    assert_eq!(code, ErrorCode::UnknownOperation);
    assert!(matches!(raw.call(10, list()).await, Reply::StationList(_)));
}

#[tokio::test]
async fn an_oversize_frame_is_answered_then_closed_and_nothing_else_is_touched() {
    let broker = TestBroker::start_with(
        std::sync::Arc::new(tempfile::TempDir::new().unwrap()),
        &["--max-frame", "64KiB"],
    );
    let client = broker.client().await;
    client
        .produce("safe", vec![json_message("{\"kept\":true}")])
        .await
        .unwrap();
    let mut bystander = broker.raw_session().await;

    let mut raw = broker.raw_session().await;
    raw.send_raw(&(1u32 << 20).to_be_bytes()).await;
    let response = raw.receive().await.expect("an answer before closing");
    let (code, message) = error_of(response.result.as_ref().unwrap());
    assert_eq!(code, ErrorCode::FrameTooLarge);
    assert!(message.contains("65536"), "{message}");
    assert!(raw.receive().await.is_none(), "the connection closes");

    assert!(matches!(
        bystander.call(11, list()).await,
        Reply::StationList(_)
    ));
    let stored = fetch_all(&client, "safe", 0).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(&stored[0].payload[..], b"{\"kept\":true}");
}

#[tokio::test]
async fn pipelined_requests_all_get_their_own_answers() {
    let broker = TestBroker::start();
    let mut raw = broker.raw_session().await;
    for id in 100..200u64 {
        let produce = Op::Produce(wire::Produce {
            station: "pipelined".into(),
            messages: vec![json_message(&id.to_string())],
            ..Default::default()
        });
        raw.send(id, produce).await;
    }
    let mut ids = Vec::new();
    while ids.len() < 100 {
        let response = raw
            .receive_within(Duration::from_secs(10))
            .await
            .expect("all answers");
        assert!(matches!(response.result, Some(Reply::ProduceResult(_))));
        ids.push(response.id);
    }
    ids.sort();
    assert_eq!(ids, (100..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn dropped_clients_free_their_connection_slots() {
    let broker = TestBroker::start_with(
        std::sync::Arc::new(tempfile::TempDir::new().unwrap()),
        &["--max-connections", "2"],
    );
    // Far more clients than slots, one after another: each one dropped must
    // give its slot back.
    for _ in 0..8 {
        let deadline = tokio::time::Instant::now() + crate::harness::PATIENCE;
        loop {
            match depot_broker::client::BrokerClient::connect(
                broker.addr,
                "root",
                crate::harness::ROOT_PASSWORD,
            )
            .await
            {
                Ok(client) => {
                    client.ping().await.unwrap();
                    break;
                }
                Err(_) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "a connection leaked"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}
