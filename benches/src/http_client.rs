//! A minimal HTTP/1.1 keep-alive client for the closed loops of
//! `depot-bench http`: one connection, one request at a time, the request's
//! fixed part rendered once, the answer's head parsed with `httparse` and its
//! body read by `Content-Length`.
//!
//! Why not only `awc`: the load generator shares the machine with the
//! server it measures, and awc's per-request work (a header map built and
//! dropped, a connection pool, timers) took a third of this two-core machine
//! at the proxy's rate, more per request the slower the server answers (fewer
//! answers per wake-up), so it held the proxy back more than the ceiling it is
//! compared with. `--client awc` still measures with awc.

use std::time::Duration;

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use crate::http::Target;

/// How long one request may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Headers an answer may carry.
const MAX_HEADERS: usize = 32;

/// A connection's byte stream: TCP, or TLS over it with `--tls`.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

pub struct MinimalConnection {
    address: String,
    /// The request line and fixed headers, without the blank line.
    head: Vec<u8>,
    body: bytes::Bytes,
    stream: Option<Box<dyn Stream>>,
    /// Bytes received and not yet part of a whole answer.
    received: Vec<u8>,
    /// The request being sent (its buffer reused).
    request: Vec<u8>,
}

impl MinimalConnection {
    /// A client for `target`, whose URL must be `http://HOST:PORT/PATH`
    /// (`https://` with `--tls`).
    pub fn new(target: &Target) -> Result<Self, String> {
        let rest = target
            .url
            .strip_prefix("http://")
            .or_else(|| target.url.strip_prefix("https://"))
            .ok_or_else(|| format!("not an http:// URL: {}", target.url))?;
        let (address, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            target.content_type,
            target.body.len()
        );
        if let Some(token) = &target.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        Ok(Self {
            address: address.to_owned(),
            head: head.into_bytes(),
            body: target.body.clone(),
            stream: None,
            received: Vec::with_capacity(4096),
            request: Vec::new(),
        })
    }

    /// Sends the request (with a `msg-id` header when given) and reads the
    /// answer: whether its status was 2xx. After an error the connection is
    /// dropped and the next call opens a new one.
    pub async fn post(&mut self, msg_id: Option<&str>) -> Result<bool, String> {
        let outcome = tokio::time::timeout(TIMEOUT, self.round_trip(msg_id))
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        if outcome.is_err() {
            self.stream = None;
            self.received.clear();
        }
        outcome
    }

    async fn round_trip(&mut self, msg_id: Option<&str>) -> Result<bool, String> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(&self.address)
                    .await
                    .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let stream: Box<dyn Stream> = match crate::bench_tls::get() {
                    Some(tls) => Box::new(
                        tls.client
                            .connect(&self.address, stream)
                            .await
                            .map_err(|e| format!("TLS to {}: {e}", self.address))?,
                    ),
                    None => Box::new(stream),
                };
                self.stream.insert(stream)
            }
        };
        self.request.clear();
        self.request.extend_from_slice(&self.head);
        if let Some(id) = msg_id {
            self.request.extend_from_slice(b"msg-id: ");
            self.request.extend_from_slice(id.as_bytes());
            self.request.extend_from_slice(b"\r\n");
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(&self.body);
        stream
            .write_all(&self.request)
            .await
            .map_err(|e| e.to_string())?;
        read_answer(stream, &mut self.received).await
    }
}

/// Reads one answer from `stream` (into and out of `buffer`): whether its
/// status was 2xx.
async fn read_answer(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
    buffer: &mut Vec<u8>,
) -> Result<bool, String> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) =
            response.parse(buffer).map_err(|e| e.to_string())?
        {
            let status = response.code.unwrap_or(0);
            let body_len = content_length(response.headers)?;
            while buffer.len() < head_len + body_len {
                fill(stream, buffer).await?;
            }
            buffer.drain(..head_len + body_len);
            return Ok((200..300).contains(&status));
        }
        fill(stream, buffer).await?;
    }
}

fn content_length(headers: &[httparse::Header<'_>]) -> Result<usize, String> {
    let header = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .ok_or("an answer without Content-Length (this client reads no other framing)")?;
    std::str::from_utf8(header.value)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "a malformed Content-Length".to_owned())
}

/// Appends what the stream has to `buffer`; the end of the stream is an
/// error (the server closed a keep-alive connection mid-answer).
async fn fill(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
    buffer: &mut Vec<u8>,
) -> Result<(), String> {
    buffer.reserve(4096);
    let read = stream.read_buf(buffer).await.map_err(|e| e.to_string())?;
    if read == 0 {
        return Err("the server closed the connection".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that reads each request whole and answers it with the next
    /// of `answers`, each written in two pieces.
    async fn server(answers: Vec<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut request = Vec::new();
                while !request.ends_with(b"{}") {
                    let mut chunk = [0u8; 1024];
                    let read = stream.read(&mut chunk).await.unwrap();
                    request.extend_from_slice(&chunk[..read]);
                }
                let (first, second) = answer.split_at(answer.len() / 2);
                stream.write_all(first.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                stream.write_all(second.as_bytes()).await.unwrap();
            }
        });
        address
    }

    fn target(address: &str) -> Target {
        Target {
            url: format!("http://{address}/stations/s/produce/single"),
            token: Some("t".into()),
            content_type: "application/json",
            body: bytes::Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn answers_split_across_reads_are_read_by_content_length() {
        let address = server(vec![
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno",
        ])
        .await;
        let mut connection = MinimalConnection::new(&target(&address)).unwrap();
        assert_eq!(connection.post(None).await, Ok(true));
        assert_eq!(connection.post(Some("id-1")).await, Ok(false));
    }

    #[tokio::test]
    async fn an_answer_without_content_length_is_an_error() {
        let address = server(vec!["HTTP/1.1 200 OK\r\n\r\n"]).await;
        let mut connection = MinimalConnection::new(&target(&address)).unwrap();
        assert!(connection.post(None).await.is_err());
    }
}
