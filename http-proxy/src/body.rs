//! Reading request bodies under an explicit limit, refusing with 413 (and the
//! JSON error body) as soon as the limit is passed, without buffering more.

use actix_web::web::{BytesMut, Payload};
use bytes::Bytes;
use futures::StreamExt;

use crate::error::ProxyError;

pub async fn read_limited(mut payload: Payload, limit: u64) -> Result<Bytes, ProxyError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ProxyError::bad_request(format!("cannot read the body: {e}")))?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
