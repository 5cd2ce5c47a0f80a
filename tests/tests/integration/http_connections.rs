//! The proxy's limits on HTTP connections themselves, tried with raw TCP
//! clients: how many it holds (`--http-max-connections`), how long a
//! request's head may take (`--http-request-timeout`), how long its body may
//! stall (`--http-body-timeout`) and how long an idle connection stays
//! (`--http-keep-alive`).

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::{
    harness::ROOT_PASSWORD,
    proxy_harness::{TestProxy, get, login},
};

const STATUS_REQUEST: &[u8] = b"GET /monitoring/status HTTP/1.1\r\nHost: depot\r\n\r\n";

/// Sends a status request on `stream` and reads one answer (the status
/// route's body is short, so one read holds it all).
async fn ask_status(stream: &mut TcpStream) -> String {
    stream.write_all(STATUS_REQUEST).await.unwrap();
    read_some(stream).await
}

async fn read_some(stream: &mut TcpStream) -> String {
    let mut buffer = vec![0; 4096];
    let read = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}

#[actix_rt::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let proxy = TestProxy::embedded(&[
        "--workers",
        "1",
        "--http-max-connections",
        "2",
        "--http-keep-alive",
        "60s",
    ]);
    let mut first = TcpStream::connect(proxy.addr).await.unwrap();
    let mut second = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(ask_status(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(ask_status(&mut second).await.starts_with("HTTP/1.1 200"));

    // The third waits in the listen backlog: connected, not served.
    let mut third = TcpStream::connect(proxy.addr).await.unwrap();
    third.write_all(STATUS_REQUEST).await.unwrap();
    let early = timeout(Duration::from_millis(700), read_some(&mut third)).await;
    assert!(early.is_err(), "served beyond the limit: {early:?}");
    // The two held connections are still served meanwhile.
    assert!(ask_status(&mut second).await.starts_with("HTTP/1.1 200"));

    drop(first);
    let answer = timeout(Duration::from_secs(5), read_some(&mut third))
        .await
        .expect("served once a connection closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[actix_rt::test]
async fn a_request_head_that_trickles_gets_408_and_others_are_served() {
    let proxy = TestProxy::embedded(&["--http-request-timeout", "300ms"]);
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(b"GET /monitoring/status HTTP/1.1\r\nHost: dep")
        .await
        .unwrap();
    // Another client is not held up by it.
    assert_eq!(get(&proxy.url("/monitoring/status")).await.status, 200);
    // Well before the default's 5 s.
    let answer = timeout(Duration::from_secs(3), read_some(&mut slow))
        .await
        .expect("the proxy answers a slow head");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let rest = timeout(Duration::from_secs(5), read_some(&mut slow))
        .await
        .expect("and closes the connection");
    assert_eq!(rest, "", "closed after the 408");
}

#[actix_rt::test]
async fn idle_connections_close_after_the_keep_alive() {
    let proxy = TestProxy::embedded(&["--http-keep-alive", "300ms"]);
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(ask_status(&mut idle).await.starts_with("HTTP/1.1 200"));
    let closed = timeout(Duration::from_secs(3), read_some(&mut idle))
        .await
        .expect("the idle connection is closed");
    assert_eq!(closed, "");

    let proxy = TestProxy::embedded(&["--http-keep-alive", "0"]);
    let mut once = TcpStream::connect(proxy.addr).await.unwrap();
    let answer = ask_status(&mut once).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[actix_rt::test]
async fn a_body_that_stalls_gets_408_and_nothing_is_stored() {
    let proxy = TestProxy::embedded(&["--http-body-timeout", "300ms"]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let mut stalled = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /stations/stalled/produce/single HTTP/1.1\r\nHost: depot\r\n\
         Authorization: Bearer {jwt}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"half\": "
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    // Well before the default's 30 s.
    let answer = timeout(Duration::from_secs(3), read_some(&mut stalled))
        .await
        .expect("the proxy answers a stalled body");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#""error":"the body stalled: nothing arrived for 300ms""#),
        "{answer}"
    );
    assert!(answer.contains(r#""success":false"#), "{answer}");
    let rest = timeout(Duration::from_secs(5), read_some(&mut stalled))
        .await
        .expect("and closes the connection");
    assert_eq!(rest, "", "closed after the 408");

    // Nothing stored: the station was not even created.
    let root = proxy.broker_client().await;
    match root.fetch("stalled", 0, 10).await {
        Ok(batch) => assert!(batch.messages.is_empty(), "{:?}", batch.messages),
        Err(error) => assert!(error.to_string().contains("not found"), "{error}"),
    }
}
