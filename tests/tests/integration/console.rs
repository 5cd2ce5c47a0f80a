//! The `/console` page in a real headless browser (Debian's Chromium, driven
//! over the DevTools protocol with a WebSocket client): log in, subscribe,
//! produce with fetch(), and see the message, then a notification, arrive
//! on the page.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::{
    harness::ROOT_PASSWORD,
    proxy_harness::{TestProxy, login, post},
};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium, killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools_port: u16,
}

impl Browser {
    fn open(url: &str) -> Self {
        let profile = tempfile::TempDir::new().unwrap();
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMIUM} (install Debian's chromium): {e}"));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut devtools_port = None;
        for line in stderr.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("DevTools listening on ws://127.0.0.1:") {
                devtools_port = rest.split('/').next().and_then(|p| p.parse().ok());
                break;
            }
        }
        Self {
            child,
            _profile: profile,
            devtools_port: devtools_port.expect("Chromium's DevTools address"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools session with the page.
struct Page {
    socket: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
    next_id: u64,
}

impl Page {
    async fn attach(browser: &Browser) -> Self {
        let list_url = format!("http://127.0.0.1:{}/json/list", browser.devtools_port);
        let deadline = Instant::now() + Duration::from_secs(20);
        let target = loop {
            let mut answer = awc::Client::default().get(&list_url).send().await.unwrap();
            let targets: Value = answer.json().await.unwrap();
            if let Some(page) = targets
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["type"] == "page")
            {
                break page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
            }
            assert!(Instant::now() < deadline, "no page in {targets}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (_, socket) = awc::Client::new()
            .ws(target)
            .max_frame_size(16 << 20)
            .connect()
            .await
            .unwrap();
        Self { socket, next_id: 1 }
    }

    /// Evaluates JavaScript in the page (awaiting promises); its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let command = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "awaitPromise": true, "returnByValue": true},
        });
        self.socket
            .send(awc::ws::Message::Text(command.to_string().into()))
            .await
            .unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("DevTools answered")
                .unwrap()
                .unwrap();
            if let awc::ws::Frame::Text(bytes) = frame {
                let answer: Value = serde_json::from_slice(&bytes).unwrap();
                if answer["id"] == id {
                    assert!(answer["result"]["exceptionDetails"].is_null(), "{answer}");
                    return answer["result"]["result"]["value"].clone();
                }
            }
        }
    }

    /// Waits until `expression` is true in the page.
    async fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.eval(expression).await != Value::Bool(true) {
            if Instant::now() > deadline {
                let page = self
                    .eval("document.body ? document.body.innerText : document.URL")
                    .await;
                panic!("timed out waiting for {what}; the page: {page}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[actix_rt::test]
async fn a_person_logs_in_subscribes_and_sees_produced_messages_arrive() {
    let proxy = TestProxy::embedded(&[]);
    proxy
        .broker_client()
        .await
        .create_station("orders", Default::default())
        .await
        .unwrap();
    let browser = Browser::open(&proxy.url("/console"));
    let mut page = Page::attach(&browser).await;
    page.wait_for(
        "the console page",
        "document.readyState === 'complete' && document.getElementById('login') !== null",
    )
    .await;

    page.eval(&format!(
        "document.getElementById('password').value = {}; document.getElementById('login').click(); true",
        json!(ROOT_PASSWORD)
    ))
    .await;
    page.wait_for(
        "the socket",
        "document.getElementById('status').textContent.startsWith('connected as root')",
    )
    .await;
    page.eval(
        "document.getElementById('station').value = 'orders'; document.getElementById('subscribe').click(); true",
    )
    .await;
    page.wait_for(
        "the subscription",
        "document.getElementById('status').textContent === 'subscribed to orders from 0'",
    )
    .await;
    page.eval(
        r#"document.getElementById('body').value = '{"from": "the browser"}'; document.getElementById('produce').click(); true"#,
    )
    .await;
    page.wait_for(
        "the produced message on the page",
        r#"document.getElementById('log').textContent.includes('orders@0 {"from":"the browser"}')"#,
    )
    .await;

    // A notification from elsewhere shows up too.
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let auth = format!("Bearer {jwt}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let sent = post(
        &proxy.url("/users/root/notify"),
        &headers,
        r#"{"data":{"hi":"page"}}"#,
    )
    .await;
    assert_eq!(sent.body["delivered"], 1, "{}", sent.body);
    page.wait_for(
        "the notification on the page",
        r#"document.getElementById('log').textContent.includes('notification {"hi":"page"}')"#,
    )
    .await;
}

/// A page on another origin emits events as browsers do without setting
/// headers: `navigator.sendBeacon` (no `Authorization`, only `text/plain`)
/// and a CORS "simple" `fetch` (no preflight), with the token, the content
/// type and the msg-id in the query string; both land as JSON messages,
/// and the page may read the proxy's answer.
#[actix_rt::test]
async fn a_page_on_another_origin_sends_beacons_and_simple_requests() {
    let page_origin = TestProxy::embedded(&[]);
    let broker = page_origin.broker_addr.expect("an embedded broker");
    let origin = format!("http://{}", page_origin.addr);
    let proxy = TestProxy::remote(broker, &["--cors-origin", &origin]);
    let root = page_origin.broker_client().await;
    root.create_station("beacons", Default::default())
        .await
        .unwrap();
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let endpoint = proxy.url(&format!(
        "/stations/beacons/produce/single?authorization={jwt}&content_type=application/json"
    ));

    let browser = Browser::open(&page_origin.url("/console"));
    let mut page = Page::attach(&browser).await;
    page.wait_for(
        "the page",
        "location.pathname === '/console' && document.readyState === 'complete'",
    )
    .await;
    let queued = page
        .eval(&format!(
            "navigator.sendBeacon({}, JSON.stringify({{event: 'unload'}}))",
            json!(format!("{endpoint}&msg_id=beacon-1"))
        ))
        .await;
    assert_eq!(queued, json!(true));
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::harness::fetch_all(&root, "beacons", 0)
        .await
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the beacon never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let answer = page
        .eval(&format!(
            "fetch({}, {{method: 'POST', headers: {{'Content-Type': 'text/plain'}}, body: JSON.stringify({{event: 'click'}})}}).then(r => r.json())",
            json!(endpoint)
        ))
        .await;
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["offset"], 1, "{answer}");

    let stored = crate::harness::fetch_all(&root, "beacons", 0).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, "beacon-1");
    for (message, event) in stored.iter().zip(["unload", "click"]) {
        assert_eq!(message.content_type, "application/json");
        let payload: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(payload, json!({ "event": event }));
    }
}

/// A page follows a station with the browser's own `EventSource`: the
/// stored messages, then new ones, each with its offset as the event id.
#[actix_rt::test]
async fn a_page_follows_a_station_with_event_source() {
    let proxy = TestProxy::embedded(&[]);
    let root = proxy.broker_client().await;
    root.create_station("feed", Default::default())
        .await
        .unwrap();
    let (jwt, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    let auth = format!("Bearer {jwt}");
    let produce = |body: &'static str| {
        let url = proxy.url("/stations/feed/produce/single");
        let auth = auth.clone();
        async move {
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            assert_eq!(post(&url, &headers, body).await.status, 200);
        }
    };
    produce(r#"{"n":0}"#).await;

    let browser = Browser::open(&proxy.url("/console"));
    let mut page = Page::attach(&browser).await;
    page.wait_for(
        "the page",
        "location.pathname === '/console' && document.readyState === 'complete'",
    )
    .await;
    page.eval(&format!(
        "window.got = []; window.feed = new EventSource({}); \
         feed.onmessage = e => got.push(e.lastEventId + ':' + JSON.stringify(JSON.parse(e.data).data)); true",
        json!(format!("/stations/feed/events?authorization={jwt}&from=0"))
    ))
    .await;
    page.wait_for("the stored message", "got.length === 1")
        .await;
    produce(r#"{"n":1}"#).await;
    page.wait_for("the new message", "got.length === 2").await;
    assert_eq!(
        page.eval("got").await,
        json!([r#"0:{"n":0}"#, r#"1:{"n":1}"#])
    );
    page.eval("feed.close(); true").await;
}
