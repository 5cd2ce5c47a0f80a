//! One HTTP attempt to a subscriber: build the request (format, signature),
//! send it with `awc` over pooled keep-alive connections, and record what
//! happened, whatever happened.
//!
//! Destinations are checked against the [`UrlPolicy`] twice: the URL as
//! written before every attempt, and every address a host name resolves to
//! (a custom resolver), so a name that points at an internal address is
//! refused even if it changed after the subscription was made.

use std::{
    error::Error as StdError,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use actix_tls::connect::{Resolve, Resolver};
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, future::LocalBoxFuture};

use crate::{
    delivery::{
        UrlPolicy, WebhookSecret, cloudevents,
        retry::{Verdict, parse_retry_after, verdict_for_error, verdict_for_status},
    },
    station::Message,
};

/// Response bodies are recorded up to this many bytes.
pub const MAX_RECORDED_BODY: usize = 4 * 1024;
const USER_AGENT: &str = concat!("depot/", env!("CARGO_PKG_VERSION"));

/// How a subscription's messages are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadFormat {
    /// CloudEvents structured mode (`application/cloudevents+json`).
    #[default]
    CloudEvents,
    /// CloudEvents binary mode (`ce-*` headers, raw payload).
    CloudEventsBinary,
    /// The payload as is, with the message's content type.
    Raw,
}

impl PayloadFormat {
    /// The name clients use.
    pub fn name(self) -> &'static str {
        match self {
            Self::CloudEvents => "cloudevents",
            Self::CloudEventsBinary => "cloudevents-binary",
            Self::Raw => "raw",
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        [Self::CloudEvents, Self::CloudEventsBinary, Self::Raw]
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                format!("unknown format '{name}': use cloudevents, cloudevents-binary or raw")
            })
    }
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    pub method: awc::http::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What one attempt did: enough to answer "what did Depot send, and what
/// came back" later.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// e.g. `POST https://example.com/hook`.
    pub request_line: String,
    pub request_headers: Vec<(String, String)>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    /// At most [`MAX_RECORDED_BODY`] bytes (more for the relay, whose
    /// callers get the body back; records keep the first 4 KiB).
    pub response_body: Bytes,
    pub duration: Duration,
    pub error: Option<String>,
    pub verdict: Verdict,
}

/// Builds the webhook request for one delivery attempt of `message`. The
/// `webhook-id` is the delivery's id, the same on every retry; the
/// timestamp and signature are made fresh for each attempt.
pub fn webhook_request(
    url: &str,
    delivery_id: &str,
    secret: &WebhookSecret,
    format: PayloadFormat,
    message: &Message,
    station: &str,
    subscription: &str,
) -> OutgoingRequest {
    let (headers, body) = match format {
        PayloadFormat::CloudEvents => (
            vec![(
                "content-type".to_owned(),
                cloudevents::STRUCTURED_CONTENT_TYPE.to_owned(),
            )],
            Bytes::from(cloudevents::structured(message, station, subscription)),
        ),
        PayloadFormat::CloudEventsBinary => (
            cloudevents::binary_headers(message, station, subscription),
            message.payload.clone(),
        ),
        PayloadFormat::Raw => {
            let mut headers = Vec::new();
            if !message.content_type.is_empty() {
                headers.push(("content-type".to_owned(), message.content_type.clone()));
            }
            (headers, message.payload.clone())
        }
    };
    let request = OutgoingRequest {
        method: awc::http::Method::POST,
        url: url.to_owned(),
        headers,
        body,
    };
    signed(request, delivery_id, secret)
}

/// Adds the Standard Webhooks headers: `webhook-id` (the delivery's id),
/// a fresh `webhook-timestamp`, and the `webhook-signature` over both and
/// the body.
pub fn signed(
    mut request: OutgoingRequest,
    delivery_id: &str,
    secret: &WebhookSecret,
) -> OutgoingRequest {
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let signature = secret.sign(delivery_id, timestamp, &request.body);
    request
        .headers
        .push(("webhook-id".to_owned(), delivery_id.to_owned()));
    request
        .headers
        .push(("webhook-timestamp".to_owned(), timestamp.to_string()));
    request
        .headers
        .push(("webhook-signature".to_owned(), signature));
    request
}

impl AttemptRecord {
    /// An attempt of `request` that has not (yet) reached the destination.
    pub fn unsent(request: &OutgoingRequest) -> Self {
        Self {
            request_line: format!("{} {}", request.method, request.url),
            request_headers: request.headers.clone(),
            status: None,
            response_headers: Vec::new(),
            response_body: Bytes::new(),
            duration: Duration::ZERO,
            error: None,
            verdict: verdict_for_error(),
        }
    }

    /// A request that could not even be built: it fails for good.
    pub fn unsendable(error: String) -> Self {
        Self {
            request_line: String::new(),
            request_headers: Vec::new(),
            status: None,
            response_headers: Vec::new(),
            response_body: Bytes::new(),
            duration: Duration::ZERO,
            error: Some(error),
            verdict: Verdict::Permanent,
        }
    }
}

/// Sends requests; one per thread (an `awc` client is not `Send`), shared
/// by the deliveries running there.
pub struct Sender {
    client: awc::Client,
    policy: Arc<UrlPolicy>,
}

/// Resolves names with the system resolver, then refuses the lookup if any
/// address is one the policy denies.
struct PolicyResolver(Arc<UrlPolicy>);

impl Resolve for PolicyResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
            for addr in &addrs {
                self.0.check_resolved(host, addr.ip())?;
            }
            Ok(addrs)
        })
    }
}

impl Sender {
    /// Must run inside an actix runtime. `connections` caps the pool; `tls`
    /// replaces the default trust (the web PKI roots).
    pub fn new(
        policy: Arc<UrlPolicy>,
        tls: Option<Arc<rustls::ClientConfig>>,
        connections: usize,
    ) -> Self {
        // https: rustls with the ring provider and the webpki roots. Fails
        // only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tcp =
            actix_tls::connect::Connector::new(Resolver::custom(PolicyResolver(policy.clone())))
                .service();
        let mut connector = awc::Connector::new()
            .connector(tcp)
            .limit(connections)
            .timeout(Duration::from_secs(10));
        if let Some(tls) = tls {
            connector = connector.rustls_0_23(tls);
        }
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .add_default_header(("user-agent", USER_AGENT))
            .finish();
        Self { client, policy }
    }

    /// Makes one attempt; never fails, the outcome is in the record.
    pub async fn send(&self, request: &OutgoingRequest, timeout: Duration) -> AttemptRecord {
        self.send_keeping(request, timeout, MAX_RECORDED_BODY).await
    }

    /// [`Sender::send`], keeping up to `body_cap` bytes of the response.
    pub async fn send_keeping(
        &self,
        request: &OutgoingRequest,
        timeout: Duration,
        body_cap: usize,
    ) -> AttemptRecord {
        let started = Instant::now();
        let mut record = AttemptRecord::unsent(request);
        if let Err(denied) = self.policy.check_url(&request.url) {
            record.error = Some(denied);
            // Retrying a refused destination cannot help.
            record.verdict = Verdict::Permanent;
            return record;
        }
        let mut outgoing = self
            .client
            .request(request.method.clone(), &request.url)
            .timeout(timeout);
        for (name, value) in &request.headers {
            outgoing = outgoing.insert_header((name.as_str(), value.as_str()));
        }
        match outgoing.send_body(request.body.clone()).await {
            Err(error) => {
                record.error = Some(describe_send_error(&error));
            }
            Ok(mut response) => {
                let status = response.status().as_u16();
                record.status = Some(status);
                record.response_headers = response
                    .headers()
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let remaining = timeout.saturating_sub(started.elapsed());
                record.response_body = read_prefix(&mut response, remaining, body_cap).await;
                record.verdict = verdict_for_status(status, retry_after);
            }
        }
        record.duration = started.elapsed();
        record
    }
}

/// Reads at most `cap` bytes of a response body, within `budget`; the rest
/// is not waited for.
async fn read_prefix<S>(
    response: &mut awc::ClientResponse<S>,
    budget: Duration,
    cap: usize,
) -> Bytes
where
    S: futures::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut body = BytesMut::new();
    let read = async {
        while body.len() < cap {
            match response.next().await {
                Some(Ok(chunk)) => {
                    let room = cap - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(budget, read).await;
    body.freeze()
}

fn describe_send_error(error: &awc::error::SendRequestError) -> String {
    use awc::error::SendRequestError;
    match error {
        SendRequestError::Timeout => "timed out waiting for the response".to_owned(),
        SendRequestError::Connect(e) => format!("could not connect: {e}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;
    use crate::delivery::test_receiver::spawn_on_loopback;

    /// A real receiver on a loopback port, answering per path.
    fn receiver() -> String {
        spawn_on_loopback(|listener| {
            HttpServer::new(|| {
                App::new()
                    .route(
                        "/ok",
                        web::post().to(|request: HttpRequest, body: web::Bytes| async move {
                            // Echo what the verifier needs.
                            let header = |n: &str| {
                                request
                                    .headers()
                                    .get(n)
                                    .unwrap()
                                    .to_str()
                                    .unwrap()
                                    .to_owned()
                            };
                            HttpResponse::Ok().json(serde_json::json!({
                                "id": header("webhook-id"),
                                "timestamp": header("webhook-timestamp"),
                                "signature": header("webhook-signature"),
                                "content_type": header("content-type"),
                                "body": String::from_utf8(body.to_vec()).unwrap(),
                            }))
                        }),
                    )
                    .route(
                        "/busy",
                        web::post().to(|| async {
                            HttpResponse::ServiceUnavailable()
                                .insert_header(("Retry-After", "7"))
                                .finish()
                        }),
                    )
                    .route(
                        "/gone",
                        web::post().to(|| async { HttpResponse::Gone().finish() }),
                    )
                    .route(
                        "/slow",
                        web::post().to(|| async {
                            actix_rt::time::sleep(Duration::from_secs(3)).await;
                            HttpResponse::Ok().finish()
                        }),
                    )
                    .route(
                        "/big",
                        web::post().to(|| async { HttpResponse::Ok().body(vec![b'x'; 100_000]) }),
                    )
            })
            .workers(1)
            .listen(listener)
            .map(|server| server.run())
        })
    }

    fn message() -> Message {
        Message {
            offset: 3,
            id: "m-1".into(),
            timestamp_ms: 1_700_000_000_000,
            headers: Vec::new(),
            content_type: "application/json".into(),
            payload: Bytes::from_static(br#"{"order":7}"#),
            producer: "app".into(),
        }
    }

    fn open_policy() -> Arc<UrlPolicy> {
        Arc::new(UrlPolicy {
            allow_private: true,
            ..Default::default()
        })
    }

    fn request(base: &str, path: &str, secret: &WebhookSecret) -> OutgoingRequest {
        let url = format!("{base}{path}");
        webhook_request(
            &url,
            "dlv-1",
            secret,
            PayloadFormat::CloudEvents,
            &message(),
            "orders",
            "billing",
        )
    }

    #[actix_rt::test]
    async fn a_2xx_is_delivered_signed_as_standard_webhooks_says() {
        let base = receiver();
        let secret = WebhookSecret::generate();
        let sender = Sender::new(open_policy(), None, 4);
        let record = sender
            .send(&request(&base, "/ok", &secret), Duration::from_secs(5))
            .await;
        assert_eq!(record.verdict, Verdict::Delivered, "{record:?}");
        assert_eq!(record.status, Some(200));
        let seen: serde_json::Value = serde_json::from_slice(&record.response_body).unwrap();
        assert_eq!(seen["id"], "dlv-1");
        assert_eq!(seen["content_type"], cloudevents::STRUCTURED_CONTENT_TYPE);
        // Verified independently: HMAC-SHA256 over "id.timestamp.body" with
        // the decoded key, base64, prefixed "v1,".
        let key = STANDARD
            .decode(secret.expose().trim_start_matches("whsec_"))
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        let signed = format!(
            "{}.{}.{}",
            seen["id"].as_str().unwrap(),
            seen["timestamp"].as_str().unwrap(),
            seen["body"].as_str().unwrap()
        );
        mac.update(signed.as_bytes());
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(seen["signature"], expected);
        let event: serde_json::Value =
            serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
        assert_eq!(event["data"], serde_json::json!({"order": 7}));
        assert!(!seen["body"].as_str().unwrap().contains(&secret.expose()));
        assert_eq!(record.request_line, format!("POST {base}/ok"));
    }

    #[actix_rt::test]
    async fn statuses_timeouts_and_refusals_get_their_verdicts() {
        let base = receiver();
        let secret = WebhookSecret::generate();
        let sender = Sender::new(open_policy(), None, 4);
        let send = |path: &str, timeout| {
            let request = request(&base, path, &secret);
            let sender = &sender;
            async move { sender.send(&request, timeout).await }
        };
        let busy = send("/busy", Duration::from_secs(5)).await;
        assert_eq!(
            busy.verdict,
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            send("/gone", Duration::from_secs(5)).await.verdict,
            Verdict::Permanent
        );
        let slow = send("/slow", Duration::from_millis(200)).await;
        assert_eq!(slow.verdict, Verdict::Retry { retry_after: None });
        assert!(slow.error.unwrap().contains("timed out"));
        assert!(slow.duration < Duration::from_secs(2));
        let big = send("/big", Duration::from_secs(5)).await;
        assert_eq!(big.response_body.len(), MAX_RECORDED_BODY);

        // Nobody listening: worth retrying.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let request = webhook_request(&url, "d", &secret, PayloadFormat::Raw, &message(), "s", "b");
        let refused = sender.send(&request, Duration::from_secs(5)).await;
        assert_eq!(refused.verdict, Verdict::Retry { retry_after: None });
        assert!(refused.error.unwrap().contains("could not connect"));

        // https speaks TLS: a plain HTTP endpoint fails the handshake
        // (retried, like any connection failure).
        let https = base.replacen("http://", "https://", 1);
        let tls = send_to(&sender, &format!("{https}/ok"), &secret).await;
        assert_eq!(tls.verdict, Verdict::Retry { retry_after: None });
        let error = tls.error.unwrap();
        assert!(error.contains("could not connect"), "{error}");
        assert!(!error.contains("not supported"), "TLS is built in: {error}");
    }

    async fn send_to(sender: &Sender, url: &str, secret: &WebhookSecret) -> AttemptRecord {
        let request = webhook_request(url, "d", secret, PayloadFormat::Raw, &message(), "s", "b");
        sender.send(&request, Duration::from_secs(5)).await
    }

    #[actix_rt::test]
    async fn the_policy_refuses_internal_destinations() {
        let base = receiver();
        let secret = WebhookSecret::generate();
        let strict = Sender::new(Arc::new(UrlPolicy::default()), None, 4);
        let record = strict
            .send(&request(&base, "/ok", &secret), Duration::from_secs(5))
            .await;
        assert_eq!(record.verdict, Verdict::Permanent);
        assert!(record.error.unwrap().contains("private"));
        assert_eq!(record.status, None);
        // Names are checked once resolved, at connection time.
        let resolver = PolicyResolver(Arc::new(UrlPolicy::default()));
        let refused = resolver.lookup("localhost", 80).await.unwrap_err();
        assert!(
            refused.to_string().contains("resolves to a denied address"),
            "{refused}"
        );
        let open = PolicyResolver(open_policy());
        assert!(!open.lookup("localhost", 80).await.unwrap().is_empty());
    }
}
