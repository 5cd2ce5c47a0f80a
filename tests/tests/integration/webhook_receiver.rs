//! A real HTTP receiver for webhook tests, scripted by path, recording
//! every request it gets; and an independent Standard Webhooks verifier.
//!
//! | path                 | answers                                          |
//! |----------------------|--------------------------------------------------|
//! | `/status/{code}`     | that status, body `status {code}`                |
//! | `/flaky`             | 500 on each delivery's first attempt, then 200   |
//! | `/down`              | 503 while `down` is set, else 200                |
//! | `/retry-after/{s}`   | 429 with `Retry-After: s` first, then 200        |
//! | `/hang/{ms}`         | 200 after `ms` milliseconds                      |
//! | anything else        | 200                                              |

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, http::StatusCode, web};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    /// Every header, names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
    pub answered: u16,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// While set, `/down` answers 503.
    pub down: Arc<AtomicBool>,
    tries: Arc<Mutex<HashMap<String, u32>>>,
}

impl Receiver {
    /// Starts serving on a fresh loopback port; returns `http://addr`.
    pub fn start(&self) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        self.serve(listener);
        format!("http://{addr}")
    }

    /// Serves on `listener` (a test may bind the port late, to play an
    /// endpoint that comes up).
    pub fn serve(&self, listener: std::net::TcpListener) {
        self.serve_maybe_tls(listener, None);
    }

    /// Starts serving HTTPS with `cert` and `key` (PEM) on a fresh loopback
    /// port; returns `https://addr`.
    pub fn start_tls(&self, cert: &std::path::Path, key: &std::path::Path) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = depot_broker::tls::server_config(cert, key).unwrap();
        self.serve_maybe_tls(listener, Some(config));
        format!("https://{addr}")
    }

    fn serve_maybe_tls(&self, listener: std::net::TcpListener, tls: Option<rustls::ServerConfig>) {
        let receiver = self.clone();
        let server = HttpServer::new(move || {
            let receiver = receiver.clone();
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let receiver = receiver.clone();
                async move { receiver.answer(request, body).await }
            }))
        })
        .workers(1);
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls),
            None => server.listen(listener),
        };
        actix_rt::spawn(server.unwrap().run());
    }

    async fn answer(&self, request: HttpRequest, body: web::Bytes) -> HttpResponse {
        let headers: HashMap<String, String> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let header = |n: &str| headers.get(n).cloned().unwrap_or_default();
        let id = header("webhook-id");
        let path = request.path().to_owned();
        let first_try = {
            let mut tries = self.tries.lock().unwrap();
            let n = tries.entry(format!("{path} {id}")).or_default();
            *n += 1;
            *n == 1
        };
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut retry_after = None;
        let answered = match parts.as_slice() {
            ["status", code] => code.parse().unwrap(),
            ["flaky"] if first_try => 500,
            ["down"] if self.down.load(Ordering::SeqCst) => 503,
            ["retry-after", seconds] if first_try => {
                retry_after = Some(seconds.to_string());
                429
            }
            ["hang", ms] => {
                actix_rt::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                200
            }
            _ => 200,
        };
        self.seen.lock().unwrap().push(Seen {
            path,
            id,
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            headers: headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            answered,
            at: Instant::now(),
        });
        let mut response = HttpResponse::build(StatusCode::from_u16(answered).unwrap());
        if let Some(seconds) = retry_after {
            response.insert_header(("Retry-After", seconds));
        }
        response.body(format!("status {answered}"))
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// What one path got.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    pub fn delivered(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| (200..300).contains(&s.answered))
            .collect()
    }
}

pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Standard Webhooks verification twice: written here independently of
/// Depot, and with the Standard Webhooks project's own verifier (the
/// off-the-shelf library a receiver would use). Both must accept.
pub fn verify(secret: &str, seen: &Seen) -> bool {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", seen.id, seen.timestamp, seen.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let ours = seen.signature.split(' ').any(|s| s == expected);

    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("webhook-id", &seen.id),
        ("webhook-timestamp", &seen.timestamp),
        ("webhook-signature", &seen.signature),
    ] {
        headers.insert(name, http::HeaderValue::from_str(value).unwrap());
    }
    let official = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(seen.body.as_bytes(), &headers)
        .is_ok();
    assert_eq!(ours, official, "the two verifiers disagree on {seen:?}");
    ours
}
