//! WebSockets on the proxy with a real WebSocket client (awc's): actions
//! routed by key, subscriptions pushed in offset order, produce over the
//! socket, authorization both ways, permission refusals, and the limits
//! (idle, oversize frames, a slow client cut off without hurting others).

use std::time::Duration;

use actix_codec::Framed;
use awc::BoxedSocket;
use awc::ws::{CloseCode, Frame, Message};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::{
    harness::{ROOT_PASSWORD, TestBroker, json_message},
    proxy_harness::{TestProxy, login, post, producer_user, producer_user_of},
};

/// A WebSocket client on one connection.
pub struct WsClient {
    framed: Framed<BoxedSocket, awc::ws::Codec>,
}

/// What the server sent next, pings skipped.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Closed(Option<awc::ws::CloseReason>),
}

impl WsClient {
    /// Connects to `/ws` with `query` (e.g. `?authorization=...`); the
    /// HTTP status when the upgrade is refused.
    pub async fn connect(proxy: &TestProxy, query: &str) -> Result<Self, u16> {
        let url = proxy.url(&format!("/ws{query}"));
        match awc::Client::new()
            .ws(url)
            .max_frame_size(4 << 20)
            .connect()
            .await
        {
            Ok((_, framed)) => Ok(Self { framed }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(other) => panic!("WebSocket connect failed: {other}"),
        }
    }

    /// Connects with a token and reads the `connected` greeting.
    pub async fn authorized(proxy: &TestProxy, jwt: &str) -> Self {
        let mut client = Self::connect(proxy, &format!("?authorization={jwt}"))
            .await
            .unwrap();
        let hello = client.json().await;
        assert_eq!(hello["action"], "connected", "{hello}");
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.framed
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.framed.send(message).await.unwrap();
    }

    pub async fn next(&mut self) -> Received {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.framed.next())
                .await
                .expect("a frame within 10 s");
            match frame {
                None => return Received::Closed(None),
                Some(Ok(Frame::Text(bytes))) => {
                    return Received::Json(serde_json::from_slice(&bytes).unwrap());
                }
                Some(Ok(Frame::Close(reason))) => return Received::Closed(reason),
                Some(Ok(Frame::Ping(bytes))) => {
                    let _ = self.framed.send(Message::Pong(bytes)).await;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("WebSocket error: {error}"),
            }
        }
    }

    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Received::Json(value) => value,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// A produce's reply and the message it pushed, in whichever order
    /// they came.
    pub async fn reply_and_push(&mut self) -> (Value, Value) {
        let (mut produced, mut pushed) = (Value::Null, Value::Null);
        for _ in 0..2 {
            let frame = self.json().await;
            match frame["action"].as_str() {
                Some("produced") => produced = frame,
                Some("message") => pushed = frame,
                _ => panic!("{frame}"),
            }
        }
        (produced, pushed)
    }

    /// The close reason's description, reading past everything before it.
    pub async fn closed(&mut self) -> String {
        loop {
            if let Received::Closed(reason) = self.next().await {
                let reason = reason.expect("a close reason");
                assert_eq!(reason.code, CloseCode::Policy, "{reason:?}");
                return reason.description.unwrap_or_default();
            }
        }
    }
}

#[actix_rt::test]
async fn actions_are_routed_and_bad_frames_answered_without_closing() {
    let proxy = TestProxy::embedded(&[]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let mut ws = WsClient::authorized(&proxy, &jwt).await;
    ws.send(json!({"action": "ping", "name": "Stepan", "id": 1}))
        .await;
    assert_eq!(
        ws.json().await,
        json!({"action": "pong", "name": "Stepan", "id": 1})
    );
    ws.send(json!({"action": "dance", "id": "d"})).await;
    assert_eq!(
        ws.json().await,
        json!({"action": "error", "error": "action 'dance' is not implemented", "id": "d"})
    );
    ws.send_raw(Message::Text("{not json".into())).await;
    assert!(
        ws.json().await["error"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    ws.send_raw(Message::Binary(bytes::Bytes::from_static(b"\x00\x01")))
        .await;
    assert!(
        ws.json().await["error"]
            .as_str()
            .unwrap()
            .contains("binary")
    );
    ws.send(json!({"action": "subscribe"})).await;
    assert!(
        ws.json().await["error"]
            .as_str()
            .unwrap()
            .contains("station")
    );
    // Still usable.
    ws.send(json!({"action": "ping"})).await;
    assert_eq!(ws.json().await["action"], "pong");
}

#[actix_rt::test]
async fn subscriptions_push_in_offset_order_and_frontends_produce_over_the_socket() {
    // Through a remote proxy: the subscription is a wire subscription.
    let broker = TestBroker::start();
    let proxy = TestProxy::remote(broker.addr, &[]);
    let client = broker.client().await;
    client
        .create_station("orders", Default::default())
        .await
        .unwrap();
    for i in 0..3 {
        client
            .produce("orders", vec![json_message(&format!("{{\"n\":{i}}}"))])
            .await
            .unwrap();
    }
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let mut ws = WsClient::authorized(&proxy, &jwt).await;
    ws.send(json!({"action": "subscribe", "station": "orders", "from": 0, "id": 1}))
        .await;
    assert_eq!(
        ws.json().await,
        json!({"action": "subscribed", "station": "orders", "from": 0, "id": 1})
    );
    for i in 0..3u64 {
        let message = ws.json().await;
        assert_eq!(message["action"], "message");
        assert_eq!(message["offset"], i);
        assert_eq!(message["data"], json!({ "n": i }));
    }
    // A frontend emits an event on the same socket; it comes back through
    // the subscription.
    ws.send(
        json!({"action": "produce", "station": "orders", "data": {"clicked": true},
        "headers": {"kind": "ui"}, "id": 2}),
    )
    .await;
    let (produced, pushed) = ws.reply_and_push().await;
    assert_eq!(produced["offset"], 3);
    assert_eq!(produced["id"], 2);
    assert_eq!(pushed["data"], json!({"clicked": true}));
    assert_eq!(pushed["headers"]["kind"], "ui");
    // Text is pushed in base64, with its content type.
    ws.send(json!({"action": "produce", "station": "orders", "data": "hello"}))
        .await;
    let (produced, text) = ws.reply_and_push().await;
    assert_eq!(produced["offset"], 4);
    assert_eq!(
        (text["data"].as_str(), text["encoding"].as_str()),
        (Some("aGVsbG8="), Some("base64"))
    );
    assert_eq!(text["content_type"], "text/plain");

    // A filtered subscription from the latest message on.
    ws.send(json!({"action": "unsubscribe", "station": "orders"}))
        .await;
    assert_eq!(ws.json().await["action"], "unsubscribed");
    ws.send(
        json!({"action": "subscribe", "station": "orders", "from": "latest",
        "filter": {"kind": "paid"}}),
    )
    .await;
    assert_eq!(ws.json().await["from"], 5);
    let mut paid = json_message("{\"paid\":1}");
    paid.headers.push(depot_schemas::wire::Header {
        key: "kind".into(),
        value: "paid".into(),
    });
    client
        .produce("orders", vec![json_message("{\"free\":1}"), paid])
        .await
        .unwrap();
    let only = ws.json().await;
    assert_eq!(
        (only["offset"].as_u64(), only["data"].clone()),
        (Some(6), json!({"paid": 1}))
    );
}

#[actix_rt::test]
async fn authorization_at_connect_or_by_message_and_permissions_hold() {
    let proxy = TestProxy::embedded(&["--ws-authorize-timeout", "300ms"]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    assert_eq!(
        WsClient::connect(&proxy, "?authorization=garbage")
            .await
            .err(),
        Some(401)
    );

    // Without a token: nothing but authorize is served.
    let mut early = WsClient::connect(&proxy, "").await.unwrap();
    early.send(json!({"action": "ping"})).await;
    assert!(early.closed().await.contains("not authorized"));
    let mut late = WsClient::connect(&proxy, "").await.unwrap();
    assert!(late.closed().await.contains("not authorized in time"));
    let mut by_message = WsClient::connect(&proxy, "").await.unwrap();
    by_message
        .send(json!({"action": "authorize", "token": root}))
        .await;
    let hello = by_message.json().await;
    assert_eq!(
        (hello["action"].as_str(), hello["user"].as_str()),
        (Some("connected"), Some("root"))
    );

    // A user who may produce to orders.* but consume nothing.
    let admin = proxy.broker_client().await;
    admin
        .create_station("orders.eu", Default::default())
        .await
        .unwrap();
    let ana = producer_user(&proxy, "ana", &["orders.*"]).await;
    let mut ws = WsClient::authorized(&proxy, &ana).await;
    ws.send(json!({"action": "produce", "station": "orders.eu", "data": {"a": 1}}))
        .await;
    assert_eq!(ws.json().await["offset"], 0);
    ws.send(json!({"action": "produce", "station": "billing", "data": {"a": 1}}))
        .await;
    assert!(
        ws.json().await["error"]
            .as_str()
            .unwrap()
            .contains("permission denied")
    );
    ws.send(json!({"action": "subscribe", "station": "orders.eu"}))
        .await;
    assert!(
        ws.json().await["error"]
            .as_str()
            .unwrap()
            .contains("permission denied")
    );

    // A refresh token is not an access token.
    let (_, refresh) = login(&proxy, "root", ROOT_PASSWORD).await;
    assert_eq!(
        WsClient::connect(&proxy, &format!("?authorization={refresh}"))
            .await
            .err(),
        Some(401)
    );
}

#[actix_rt::test]
async fn idle_and_oversize_clients_are_closed_with_a_reason() {
    let proxy = TestProxy::embedded(&[
        "--ws-ping-interval",
        "100ms",
        "--ws-idle-timeout",
        "400ms",
        "--ws-max-frame",
        "1KiB",
    ]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    // Answering pings keeps a connection open.
    let mut alive = WsClient::authorized(&proxy, &jwt).await;
    // Not reading (so not answering pings) gets one closed as idle.
    let mut silent = WsClient::authorized(&proxy, &jwt).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        alive.send(json!({"action": "ping"})).await;
        assert_eq!(alive.json().await["action"], "pong");
    }
    assert!(silent.closed().await.contains("idle"));

    let mut big = WsClient::authorized(&proxy, &jwt).await;
    let huge = "x".repeat(2048);
    big.send(json!({"action": "ping", "pad": huge})).await;
    match big.next().await {
        Received::Closed(Some(reason)) => {
            assert_eq!(reason.code, CloseCode::Protocol);
            assert!(reason.description.unwrap().contains("too large"));
        }
        other => panic!("{other:?}"),
    }
}

#[actix_rt::test]
async fn a_slow_client_is_cut_off_without_hurting_others() {
    let proxy = TestProxy::embedded(&["--ws-send-buffer", "8", "--ws-slow-timeout", "200ms"]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let client = proxy.broker_client().await;
    client
        .create_station("firehose", Default::default())
        .await
        .unwrap();
    let mut fast = WsClient::authorized(&proxy, &jwt).await;
    fast.send(json!({"action": "subscribe", "station": "firehose"}))
        .await;
    assert_eq!(fast.json().await["action"], "subscribed");
    let mut slow = SlowClient::subscribe(&proxy, &jwt, "firehose").await;
    // ~48 MiB: more than the socket buffers can hide.
    let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(8 * 1024));
    let total = 6_000;
    let producer = async {
        for _ in 0..total / 100 {
            let batch = (0..100).map(|_| json_message(&payload)).collect();
            client.produce("firehose", batch).await.unwrap();
        }
    };
    let reader = async {
        for offset in 0..total as u64 {
            let message = fast.json().await;
            assert_eq!(message["offset"], offset);
        }
    };
    futures::join!(producer, reader);
    // The slow one never read: it was closed, after what fit.
    let (code, reason) = slow.close_frame().await;
    assert_eq!(code, 1008);
    assert!(reason.contains("too slow"), "{reason}");
    let metrics = crate::proxy_harness::get_text(&proxy.url("/metrics"))
        .await
        .1;
    assert!(
        metrics.contains("depot_proxy_ws_closed_total{reason=\"slow\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("depot_proxy_ws_connections 1"),
        "{metrics}"
    );
    // The proxy still serves everyone else.
    let answer = post(
        &proxy.url("/stations/firehose/produce/single"),
        &[
            ("Authorization", &format!("Bearer {jwt}")),
            ("Content-Type", "application/json"),
        ],
        "{}",
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(fast.json().await["offset"], total as u64);
}

/// A client that opens a WebSocket on a socket with a tiny receive buffer
/// (so the kernel cannot hide its slowness), subscribes, and never reads.
/// Written by hand: the handshake and one masked frame are all it needs.
struct SlowClient {
    socket: tokio::net::TcpStream,
}

impl SlowClient {
    async fn subscribe(proxy: &TestProxy, jwt: &str, station: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut socket = socket.connect(proxy.addr).await.unwrap();
        let handshake = format!(
            "GET /ws?authorization={jwt} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            proxy.addr
        );
        socket.write_all(handshake.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(socket.read_u8().await.unwrap());
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let mut client = Self { socket };
        let subscribe = json!({"action": "subscribe", "station": station}).to_string();
        // One masked text frame (clients must mask).
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x81, 0x80 | subscribe.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(subscribe.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        client.socket.write_all(&frame).await.unwrap();
        client
    }

    /// Reads everything the server sent, to its close frame: (code, reason).
    async fn close_frame(&mut self) -> (u16, String) {
        use tokio::io::AsyncReadExt;
        let read = async {
            loop {
                let first = self.socket.read_u8().await.unwrap();
                let mut len = u64::from(self.socket.read_u8().await.unwrap() & 0x7f);
                if len == 126 {
                    len = u64::from(self.socket.read_u16().await.unwrap());
                } else if len == 127 {
                    len = self.socket.read_u64().await.unwrap();
                }
                let mut payload = vec![0; len as usize];
                self.socket.read_exact(&mut payload).await.unwrap();
                if first & 0x0f == 0x8 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("a close frame")
    }
}

#[actix_rt::test]
async fn notifications_reach_a_users_connections_on_every_proxy() {
    let broker = TestBroker::start();
    let proxy_a = TestProxy::remote(broker.addr, &[]);
    let proxy_b = TestProxy::remote(broker.addr, &[]);
    let admin = broker.client().await;
    let ana = producer_user_of(&admin, &proxy_a, "ana", &[]).await;
    let (root, _) = login(&proxy_a, "root", ROOT_PASSWORD).await;
    let mut on_a = WsClient::authorized(&proxy_a, &ana).await;
    // Authorized by message: registered too.
    let mut on_b = WsClient::connect(&proxy_b, "").await.unwrap();
    on_b.send(json!({"action": "authorize", "token": ana}))
        .await;
    let b_id = on_b.json().await["connection"].as_str().unwrap().to_owned();

    let listed = |user: &str| {
        let out = broker.cli_ok(&["--json", "connections", "list", "--user", user]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    crate::webhook_receiver::wait_until("two registered connections", || listed("ana").len() == 2)
        .await;
    let proxies: std::collections::BTreeSet<String> = listed("ana")
        .iter()
        .map(|c| c["proxy"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(proxies.len(), 2, "one on each proxy");

    // A third request, to either proxy, reaches both.
    let auth = format!("Bearer {root}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let sent = post(
        &proxy_a.url("/users/ana/notify"),
        &headers,
        r#"{"data":{"download":"report-7"}}"#,
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.body["delivered"], 2);
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(
            ws.json().await,
            json!({"action": "notification", "data": {"download": "report-7"}})
        );
    }
    // One connection, through the other proxy.
    let one = post(
        &proxy_a.url(&format!("/connections/{b_id}/notify")),
        &headers,
        r#"{"data":"only b"}"#,
    )
    .await;
    assert_eq!(one.body["delivered"], 1);
    assert_eq!(on_b.json().await["data"], "only b");
    // The CLI, too.
    assert!(
        broker
            .cli_ok(&["notify", "--user", "ana", "{\"n\":1}"])
            .contains("delivered to 2")
    );
    assert_eq!(on_a.json().await["data"], json!({"n": 1}));
    assert_eq!(on_b.json().await["data"], json!({"n": 1}));

    // Only administrators and users with the notify right may notify.
    let bob = producer_user_of(&admin, &proxy_a, "bob", &[]).await;
    let bob_auth = format!("Bearer {bob}");
    let bob_headers = [
        ("Authorization", bob_auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let refused = post(
        &proxy_a.url("/users/ana/notify"),
        &bob_headers,
        r#"{"data":1}"#,
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    broker.cli_ok(&["users", "update", "bob", "--notify", "true"]);
    let allowed = post(
        &proxy_b.url("/users/ana/notify"),
        &bob_headers,
        r#"{"data":2}"#,
    )
    .await;
    assert_eq!(allowed.body["delivered"], 2, "{}", allowed.body);
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(ws.json().await["data"], 2);
    }
    let bad = post(&proxy_a.url("/users/ana/notify"), &headers, r#"{"nope":1}"#).await;
    assert_eq!(bad.status, 400);

    // A notification station: producing with a `user` header notifies.
    broker.cli_ok(&[
        "stations",
        "create",
        "alerts",
        "--notify-connections",
        "true",
    ]);
    let user_header = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("user", "ana"),
    ];
    let produced = post(
        &proxy_b.url("/stations/alerts/produce/single"),
        &user_header,
        r#"{"alert":"disk"}"#,
    )
    .await;
    assert_eq!(produced.status, 200, "{}", produced.body);
    for ws in [&mut on_a, &mut on_b] {
        let got = ws.json().await;
        assert_eq!(
            got,
            json!({"action": "notification", "data": {"alert": "disk"}})
        );
    }
    let one_header = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "text/plain"),
        ("connection-id", b_id.as_str()),
    ];
    post(
        &proxy_a.url("/stations/alerts/produce/single"),
        &one_header,
        "just b",
    )
    .await;
    assert_eq!(on_b.json().await["data"], "just b");
    // Over the wire, the header may be `connection` itself.
    let mut to_b = crate::harness::json_message("{\"wire\":true}");
    to_b.headers.push(depot_schemas::wire::Header {
        key: "connection".into(),
        value: b_id.clone(),
    });
    admin.produce("alerts", vec![to_b]).await.unwrap();
    assert_eq!(on_b.json().await["data"], json!({"wire": true}));
    broker.cli_ok(&[
        "stations",
        "update",
        "alerts",
        "--notify-connections",
        "false",
    ]);
    post(
        &proxy_a.url("/stations/alerts/produce/single"),
        &user_header,
        r#"{"alert":"off"}"#,
    )
    .await;
    on_a.send(json!({"action": "ping"})).await;
    assert_eq!(
        on_a.json().await["action"],
        "pong",
        "nothing pushed once turned off"
    );

    // Closing a socket removes its entry; a proxy that dies takes its
    // entries with it.
    drop(on_a);
    crate::webhook_receiver::wait_until("the closed connection gone", || listed("ana").len() == 1)
        .await;
    drop(on_b);
    drop(proxy_b);
    crate::webhook_receiver::wait_until("the dead proxy's entries gone", || {
        listed("ana").is_empty()
    })
    .await;
}

#[actix_rt::test]
async fn a_password_change_closes_the_users_older_sockets_on_every_proxy() {
    let broker = TestBroker::start();
    let proxy_a = TestProxy::remote(broker.addr, &[]);
    let proxy_b = TestProxy::remote(broker.addr, &[]);
    let admin = broker.client().await;
    let old = producer_user_of(&admin, &proxy_a, "ana", &[]).await;
    let bob = producer_user_of(&admin, &proxy_a, "bob", &[]).await;
    let mut on_a = WsClient::authorized(&proxy_a, &old).await;
    let mut on_b = WsClient::connect(&proxy_b, "").await.unwrap();
    on_b.send(json!({"action": "authorize", "token": old}))
        .await;
    assert_eq!(on_b.json().await["action"], "connected");
    let mut bobs = WsClient::authorized(&proxy_b, &bob).await;
    let registered = || {
        let out = broker.cli_ok(&["--json", "connections", "list"]);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    crate::webhook_receiver::wait_until("three registered connections", || registered() == 3).await;

    broker.cli_ok(&["users", "update", "ana", "--password", "a-new-password"]);
    for socket in [&mut on_a, &mut on_b] {
        let reason = socket.closed().await;
        assert!(reason.contains("authenticate again"), "{reason}");
    }
    // A socket opened with the new password lives on, as do other users'.
    let (new, _) = login(&proxy_a, "ana", "a-new-password").await;
    let mut renewed = WsClient::authorized(&proxy_a, &new).await;
    for socket in [&mut renewed, &mut bobs] {
        socket.send(json!({"action": "ping"})).await;
        assert_eq!(socket.json().await["action"], "pong");
    }
}

#[actix_rt::test]
async fn deleting_a_user_closes_its_sockets() {
    let proxy = TestProxy::embedded(&[]);
    let jwt = producer_user(&proxy, "leaver", &["*"]).await;
    let mut socket = WsClient::authorized(&proxy, &jwt).await;
    let root = proxy.broker_client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while root.list_connections("leaver").await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    root.delete_user("leaver").await.unwrap();
    let reason = socket.closed().await;
    assert!(reason.contains("deleted"), "{reason}");
}

#[actix_rt::test]
async fn on_sigterm_sockets_are_told_to_go_away_and_the_proxy_exits_promptly() {
    let mut proxy = TestProxy::embedded(&["--shutdown-timeout", "20s"]);
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let mut socket = WsClient::authorized(&proxy, &jwt).await;
    let started = std::time::Instant::now();
    proxy.terminate();
    match socket.next().await {
        Received::Closed(Some(reason)) => {
            assert_eq!(reason.code, CloseCode::Away);
            assert!(reason.description.unwrap().contains("shutting down"));
        }
        other => panic!("{other:?}"),
    }
    assert!(proxy.exit_status().success());
    // Not the shutdown timeout: nothing held the workers once the sockets
    // were closed.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "exited after {took:?}");
}
