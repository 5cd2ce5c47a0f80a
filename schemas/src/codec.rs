//! Length-prefixed protobuf framing: a 4-byte big-endian length, then one
//! protobuf message of that many bytes.
//!
//! [`FrameCodec`] plugs into `tokio_util::codec::Framed`. It tells apart the
//! two ways a frame can be bad, because they need different handling:
//! - a frame that does not decode as protobuf still has a known length, so the
//!   stream stays in sync: it is yielded as `Ok(Some(Err(decode_error)))` and
//!   the peer can be answered and kept;
//! - a frame longer than the limit loses the framing (we refuse to buffer it):
//!   it is a [`FrameError::TooLarge`], after which the stream must be closed.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

/// Default cap on one frame, in bytes (16 MiB): large enough for a batch of
/// maximum-size messages, small enough that one peer cannot make us allocate
/// without bound.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
const LENGTH_PREFIX_BYTES: usize = 4;

/// A failure that ends the stream: framing is lost or the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge { length: usize, limit: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes `In` frames and encodes `Out` frames (a server uses
/// `FrameCodec<Request, Response>`, a client the reverse).
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    max_frame_bytes: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            _types: PhantomData,
        }
    }

    /// Changes the limit, for a peer that announced its own (a client
    /// learns the broker's from `HelloOk`).
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl<In: Message + Default, Out> Decoder for FrameCodec<In, Out> {
    type Item = Result<In, prost::DecodeError>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        if src.len() < LENGTH_PREFIX_BYTES {
            return Ok(None);
        }
        let length =
            u32::from_be_bytes(src[..LENGTH_PREFIX_BYTES].try_into().expect("4 bytes")) as usize;
        if length > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                length,
                limit: self.max_frame_bytes,
            });
        }
        let total = LENGTH_PREFIX_BYTES + length;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX_BYTES);
        let frame = src.split_to(length).freeze();
        Ok(Some(In::decode(frame)))
    }
}

impl<In, Out: Message> Encoder<Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        let length = item.encoded_len();
        if length > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                length,
                limit: self.max_frame_bytes,
            });
        }
        dst.reserve(LENGTH_PREFIX_BYTES + length);
        dst.put_u32(length as u32);
        item.encode(dst)
            .expect("buffer reserved for the whole message");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ping, Request, request::Op};

    fn ping_request(id: u64) -> Request {
        Request {
            id,
            op: Some(Op::Ping(Ping {
                payload: bytes::Bytes::from_static(b"hi"),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_a_frame_split_across_reads() {
        let mut codec = FrameCodec::<Request, Request>::default();
        let mut encoded = BytesMut::new();
        codec.encode(ping_request(7), &mut encoded).unwrap();
        let mut src = BytesMut::new();
        src.extend_from_slice(&encoded[..3]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(&encoded[3..]);
        let decoded = codec.decode(&mut src).unwrap().unwrap().unwrap();
        assert_eq!(decoded, ping_request(7));
        assert!(src.is_empty());
    }

    #[test]
    fn undecodable_frame_keeps_the_stream_in_sync() {
        let mut codec = FrameCodec::<Request, Request>::default();
        let mut src = BytesMut::new();
        src.put_u32(2);
        src.extend_from_slice(&[0xff, 0xff]);
        codec.encode(ping_request(8), &mut src).unwrap();
        assert!(codec.decode(&mut src).unwrap().unwrap().is_err());
        assert_eq!(codec.decode(&mut src).unwrap().unwrap().unwrap().id, 8);
    }

    #[test]
    fn oversize_frame_is_refused_before_buffering() {
        let mut codec = FrameCodec::<Request, Request>::new(10);
        let mut src = BytesMut::new();
        src.put_u32(11);
        match codec.decode(&mut src) {
            Err(FrameError::TooLarge {
                length: 11,
                limit: 10,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
