//! Reading request bodies under an explicit limit, refusing with 413 (and the
//! JSON error body) as soon as the limit is passed, without buffering more,
//! and with 408 when the body stalls (nothing for `--http-body-timeout`), so
//! a client trickling its body cannot hold a connection and its buffer.

use std::time::Duration;

use actix_web::web::{BytesMut, Payload};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use crate::error::ProxyError;

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
