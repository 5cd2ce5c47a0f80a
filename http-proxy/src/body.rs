//! Reading request bodies under an explicit limit, refusing with 413 (and the
//! JSON error body) as soon as the limit is passed, without buffering more,
//! and with 408 when the body stalls (nothing for `--http-body-timeout`), so
//! a client trickling its body cannot hold a connection and its buffer.
//!
//! A body may come compressed (`Content-Encoding: gzip`, `deflate`, `br` or
//! `zstd`, as batch producers send large batches): it is decompressed after
//! it has arrived, and the limit holds for what it decompresses to, which
//! is never produced past the limit, so a small bomb cannot fill memory.

use std::{
    future::{Ready, ready},
    io::Read,
    time::Duration,
};

use actix_web::{
    FromRequest, HttpRequest, dev,
    http::header::CONTENT_ENCODING,
    web::{BytesMut, Payload},
};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use crate::error::ProxyError;

/// A request's body as it arrives, and its `Content-Encoding`; handlers
/// read it with [`crate::routes::AppState::read_body`].
pub struct RequestBody {
    payload: Payload,
    encoding: Option<String>,
}

impl FromRequest for RequestBody {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let encoding = request
            .headers()
            .get(CONTENT_ENCODING)
            .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
        ready(
            Payload::from_request(request, payload)
                .into_inner()
                .map(|payload| Self { payload, encoding }),
        )
    }
}

/// The whole body, decompressed, at most `limit` bytes either way.
pub async fn read_body(
    body: RequestBody,
    limit: u64,
    stall_timeout: Duration,
) -> Result<Bytes, ProxyError> {
    let raw = read_limited(body.payload, limit, stall_timeout).await?;
    let encoding = match body.encoding {
        None => return Ok(raw),
        Some(identity) if identity == "identity" => return Ok(raw),
        Some(encoding) => encoding,
    };
    if raw.len() <= DECOMPRESS_INLINE_BYTES {
        return decompress(&encoding, &raw, limit);
    }
    // Megabytes take milliseconds: off the worker's event loop.
    actix_web::web::block(move || decompress(&encoding, &raw, limit))
        .await
        .map_err(|e| ProxyError::Internal(format!("decompression did not run: {e}")))?
}

/// Compressed bodies up to this size are decompressed on the worker's own
/// thread (tens of microseconds); larger ones on the blocking pool.
const DECOMPRESS_INLINE_BYTES: usize = 64 * 1024;

/// `raw` decoded as `encoding` says, refused beyond `limit` bytes.
fn decompress(encoding: &str, raw: &[u8], limit: u64) -> Result<Bytes, ProxyError> {
    let decoder: Box<dyn Read + '_> = match encoding {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        // HTTP's "deflate" is the zlib format.
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(raw)),
        "br" => Box::new(brotli::Decompressor::new(raw, 64 * 1024)),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::new(raw)
                .map_err(|e| ProxyError::bad_request(format!("the body is not valid zstd: {e}")))?,
        ),
        other => {
            return Err(ProxyError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding '{other}'; use gzip, deflate, br or zstd (one of them)"
            )));
        }
    };
    let mut decoded = Vec::new();
    decoder
        .take(limit + 1)
        .read_to_end(&mut decoded)
        .map_err(|e| ProxyError::bad_request(format!("the body is not valid {encoding}: {e}")))?;
    if decoded.len() as u64 > limit {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    Ok(decoded.into())
}

pub async fn read_limited(
    mut payload: Payload,
    limit: u64,
    stall_timeout: Duration,
) -> Result<Bytes, ProxyError> {
    let mut body = BytesMut::new();
    loop {
        // What has arrived is taken without arming a timer (a small body
        // comes with the head: most requests never wait).
        let next = match payload.next().now_or_never() {
            Some(next) => next,
            None => tokio::time::timeout(stall_timeout, payload.next())
                .await
                .map_err(|_| {
                    ProxyError::RequestTimeout(format!(
                        "the body stalled: nothing arrived for {}",
                        humantime::format_duration(stall_timeout)
                    ))
                })?,
        };
        let Some(chunk) = next else {
            return Ok(body.freeze());
        };
        let chunk =
            chunk.map_err(|e| ProxyError::bad_request(format!("cannot read the body: {e}")))?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
}
