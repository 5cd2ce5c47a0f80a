//! Server-Sent Events (`GET /stations/{name}/events`) read with a real HTTP
//! client as a byte stream: events in offset order, a resume after
//! `Last-Event-ID`, a start at a consumer's position (embedded and remote),
//! notifications, refusals before the stream, the end of a session and the
//! stream limit.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::{
    harness::{ROOT_PASSWORD, TestBroker},
    proxy_harness::{
        JSON, TestProxy, create_station, login, post, produce_single, producer_user, send,
    },
};

/// One event of a stream: its fields by name (`id`, `event`, `data`).
type Event = std::collections::HashMap<String, String>;

/// An open event stream, read as the bytes arrive.
struct EventStream {
    body: futures::stream::LocalBoxStream<'static, Result<bytes::Bytes, awc::error::PayloadError>>,
    buffer: String,
}

impl EventStream {
    /// Opens `path` (with the token in the query) and the extra headers;
    /// the HTTP status and body when it is refused.
    async fn open(
        proxy: &TestProxy,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, (u16, Value)> {
        let mut request = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish()
            .get(proxy.url(path_and_query));
        for header in headers {
            request = request.insert_header(*header);
        }
        let mut response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.body().await.unwrap();
            return Err((status, serde_json::from_slice(&body).unwrap()));
        }
        let content_type = response.headers().get("content-type").unwrap();
        assert_eq!(content_type, "text/event-stream");
        Ok(Self {
            body: response.boxed_local(),
            buffer: String::new(),
        })
    }

    /// The next event (comments skipped); `None` when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let event: Event = block
                    .lines()
                    .filter(|line| !line.starts_with(':') && !line.is_empty())
                    .filter_map(|line| line.split_once(": "))
                    .map(|(field, value)| (field.to_owned(), value.to_owned()))
                    .collect();
                if event.contains_key("data") {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")?
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event's data as JSON, checking its kind (`None`: a message).
    async fn data(&mut self, kind: Option<&str>) -> (Event, Value) {
        let event = self.next().await.expect("an event");
        assert_eq!(event.get("event").map(String::as_str), kind, "{event:?}");
        let data = serde_json::from_str(&event["data"]).unwrap();
        (event, data)
    }
}

#[actix_rt::test]
async fn a_station_streams_in_order_resumes_and_ends_with_the_session() {
    let proxy = TestProxy::embedded(&[]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    create_station(&proxy, &root, "live").await;
    for n in 0..2 {
        produce_single(&proxy, &root, "live", &[JSON], &format!("{{\"n\":{n}}}")).await;
    }
    let path = format!("/stations/live/events?authorization={root}");

    // From the start: the stored messages, then new ones as they come.
    let mut stream = EventStream::open(&proxy, &format!("{path}&from=0"), &[])
        .await
        .unwrap();
    for n in 0..2 {
        let (event, message) = stream.data(None).await;
        assert_eq!(event["id"], n.to_string());
        assert_eq!(message["data"], json!({ "n": n }));
        assert_eq!(message["offset"], n);
    }
    // From the next message (on the station's shared feed).
    let mut latest = EventStream::open(&proxy, &path, &[]).await.unwrap();
    produce_single(&proxy, &root, "live", &[JSON], r#"{"n":2}"#).await;
    for stream in [&mut stream, &mut latest] {
        let (event, message) = stream.data(None).await;
        assert_eq!(event["id"], "2");
        assert_eq!(message["action"], "message");
        assert_eq!(message["data"], json!({"n": 2}));
    }

    // A notification for the token's user arrives on the stream.
    let auth = format!("Bearer {root}");
    let sent = post(
        &proxy.url("/users/root/notify"),
        &[("Authorization", auth.as_str()), JSON],
        r#"{"data":{"hi":"stream"}}"#,
    )
    .await;
    assert_eq!(sent.body["delivered"], 2, "{}", sent.body);
    for stream in [&mut stream, &mut latest] {
        let (_, data) = stream.data(Some("notification")).await;
        assert_eq!(data, json!({"hi": "stream"}));
    }

    // A reconnect says where it was, and resumes after it (over ?from=).
    let mut resumed =
        EventStream::open(&proxy, &format!("{path}&from=0"), &[("Last-Event-ID", "1")])
            .await
            .unwrap();
    let (event, _) = resumed.data(None).await;
    assert_eq!(event["id"], "2");

    // Logging out ends both streams, saying why.
    let out = post(
        &proxy.url("/auth/logout"),
        &[("Authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    for stream in [&mut stream, &mut latest, &mut resumed] {
        let (_, end) = stream.data(Some("end")).await;
        let reason = end["error"].as_str().unwrap();
        assert!(reason.contains("the session is over"), "{reason}");
        assert!(stream.next().await.is_none(), "the stream ended");
    }
    // ... and the token opens no new one.
    let (status, _) = EventStream::open(&proxy, &path, &[]).await.err().unwrap();
    assert_eq!(status, 401);
}

/// A page following for a consumer starts where the consumer's commits
/// left it, resumes after `Last-Event-ID` (not at the older position), and
/// a commit moves where the next page starts.
async fn a_stream_starts_where_its_consumer_left_off(proxy: &TestProxy) {
    let (root, _) = login(proxy, "root", ROOT_PASSWORD).await;
    create_station(proxy, &root, "feed").await;
    for n in 0..3 {
        produce_single(proxy, &root, "feed", &[JSON], &format!("{{\"n\":{n}}}")).await;
    }
    let path = format!("/stations/feed/events?authorization={root}&consumer=page");

    // No position yet: from the oldest message.
    let mut first = EventStream::open(proxy, &path, &[]).await.unwrap();
    let (event, _) = first.data(None).await;
    assert_eq!(event["id"], "0");
    drop(first);

    let position = proxy.url("/stations/feed/consumers/page");
    let committed = send("PUT", &position, &root, Some(json!({ "next_offset": 2 }))).await;
    assert_eq!(committed.status, 200, "{}", committed.body);
    let mut next = EventStream::open(proxy, &path, &[]).await.unwrap();
    let (event, message) = next.data(None).await;
    assert_eq!(event["id"], "2");
    assert_eq!(message["data"], json!({ "n": 2 }));
    // New messages follow on the same stream.
    produce_single(proxy, &root, "feed", &[JSON], r#"{"n":3}"#).await;
    let (event, _) = next.data(None).await;
    assert_eq!(event["id"], "3");

    // A reconnect resumes after the last event it got, not at the commit.
    let mut resumed = EventStream::open(proxy, &path, &[("Last-Event-ID", "2")])
        .await
        .unwrap();
    let (event, _) = resumed.data(None).await;
    assert_eq!(event["id"], "3");

    // Refused before the stream: an offset and a consumer, a bad name.
    let both = EventStream::open(proxy, &format!("{path}&from=0"), &[]).await;
    let (status, body) = both.err().unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false);
    let bad = format!("/stations/feed/events?authorization={root}&consumer=Not.Valid");
    let (status, body) = EventStream::open(proxy, &bad, &[]).await.err().unwrap();
    assert_eq!(status, 400, "{body}");
}

#[actix_rt::test]
async fn a_stream_starts_where_its_consumer_left_off_embedded() {
    a_stream_starts_where_its_consumer_left_off(&TestProxy::embedded(&[])).await;
}

#[actix_rt::test]
async fn a_stream_starts_where_its_consumer_left_off_remote() {
    let broker = TestBroker::start();
    a_stream_starts_where_its_consumer_left_off(&TestProxy::remote(broker.addr, &[])).await;
}

#[actix_rt::test]
async fn streams_are_refused_before_they_start_and_limited() {
    let proxy = TestProxy::embedded(&["--sse-max-streams", "1", "--sse-keepalive", "1s"]);
    let (root, _) = login(&proxy, "root", ROOT_PASSWORD).await;
    create_station(&proxy, &root, "quiet").await;

    let (status, body) = EventStream::open(&proxy, "/stations/quiet/events", &[])
        .await
        .err()
        .unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["success"], false);
    let writer = producer_user(&proxy, "writer", &["*"]).await;
    let refusal = |path: String, headers: &'static [(&'static str, &'static str)]| {
        let proxy = &proxy;
        async move {
            EventStream::open(proxy, &path, headers)
                .await
                .err()
                .unwrap()
        }
    };
    let (status, body) = refusal(
        format!("/stations/quiet/events?authorization={writer}"),
        &[],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = refusal(
        format!("/stations/nowhere/events?authorization={root}"),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = refusal(
        format!("/stations/quiet/events?authorization={root}"),
        &[("Last-Event-ID", "yesterday")],
    )
    .await;
    assert_eq!(status, 400);

    // One stream at a time on this proxy; its place comes back when it ends.
    let bearer = format!("Bearer {root}");
    let headers = [("Authorization", bearer.as_str())];
    let first = EventStream::open(&proxy, "/stations/quiet/events", &headers)
        .await
        .unwrap();
    let (status, body) = EventStream::open(&proxy, "/stations/quiet/events", &headers)
        .await
        .err()
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--sse-max-streams"),
        "{body}"
    );
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match EventStream::open(&proxy, "/stations/quiet/events", &headers).await {
            Ok(_) => break,
            Err((503, _)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}
