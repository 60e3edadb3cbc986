//! Reading a request body within the size limit and undoing its `Content-Encoding`.
//!
//! `gzip` and `snappy` are understood (names case-insensitive, as upstream since 1.6). For
//! snappy, both the framed stream format (Python client, upstream) and the raw block format
//! (the Rust `prometheus` crate's `push_raw`) are accepted: a framed stream always starts
//! with the stream identifier chunk, which is how the two are told apart. The limit applies
//! to the bytes after decompression too, so a small bomb is refused with 413 before it can
//! fill memory.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::errors::ApiError;

/// Reads the whole body, refusing more than `limit` bytes on the wire or once decoded.
/// Returns the decoded body and the number of bytes received.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<(Bytes, usize), ApiError> {
    let read_error = |error: Box<dyn std::error::Error + Send + Sync>| {
        if error
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::BodyTooLarge { limit }
        } else {
            ApiError::BodyRead(error.to_string())
        }
    };
    // A body that arrives in one piece (every small push) is kept as it came; one in several
    // pieces is joined in a buffer sized by its `Content-Length`, which is believed up to
    // PRESIZE_AT_MOST: a client that claims more and sends less holds no more than that.
    let expected = content_length(headers)
        .unwrap_or(0)
        .min(limit)
        .min(PRESIZE_AT_MOST);
    let mut body = http_body_util::Limited::new(body, limit);
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(read_error)?.into_data() else {
            continue; // trailers
        };
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut buffer = BytesMut::with_capacity(expected.max(first.len() + data.len()));
                buffer.extend_from_slice(&first);
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
        }
    }
    let raw = joined.map_or(first, BytesMut::freeze);
    let received = raw.len();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let decoded = match encoding.as_str() {
        "" | "identity" => raw,
        "gzip" | "x-gzip" => Bytes::from(gunzip(&raw, limit)?),
        "snappy" => Bytes::from(unsnappy(&raw, limit)?),
        other => return Err(ApiError::UnsupportedEncoding(other.to_string())),
    };
    Ok((decoded, received))
}

/// The most room a body's `Content-Length` reserves before its bytes arrive.
const PRESIZE_AT_MOST: usize = 8 << 20;

/// The request's `Content-Length`, when it has a valid one.
pub fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The first bytes of every framed snappy stream: the stream identifier chunk.
const SNAPPY_STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Decodes framed or raw snappy, refusing output beyond `limit`.
pub fn unsnappy(compressed: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let bad = |reason: String| ApiError::BadCompression {
        encoding: "snappy",
        reason,
    };
    if compressed.starts_with(SNAPPY_STREAM_IDENTIFIER) {
        let mut decoder = snap::read::FrameDecoder::new(compressed).take(limit as u64 + 1);
        let mut out = Vec::new();
        decoder
            .read_to_end(&mut out)
            .map_err(|error| bad(error.to_string()))?;
        if out.len() > limit {
            return Err(ApiError::BodyTooLarge { limit });
        }
        return Ok(out);
    }
    // A raw block states its decoded length up front: check it before allocating.
    let length = snap::raw::decompress_len(compressed).map_err(|error| bad(error.to_string()))?;
    if length > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|error| bad(error.to_string()))
}

/// Decodes (possibly multi-member) gzip, refusing output beyond `limit`.
pub fn gunzip(compressed: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    decoder
        .read_to_end(&mut out)
        .map_err(|error| ApiError::BadCompression {
            encoding: "gzip",
            reason: error.to_string(),
        })?;
    if out.len() > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    #[test]
    fn snappy_framed_and_raw() {
        let text = b"m 1\n".repeat(100);
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(&text).unwrap();
        let framed = framed.into_inner().unwrap();
        assert_eq!(unsnappy(&framed, 1 << 20).unwrap(), text);
        let raw = snap::raw::Encoder::new().compress_vec(&text).unwrap();
        assert_eq!(unsnappy(&raw, 1 << 20).unwrap(), text);
        assert!(matches!(
            unsnappy(&raw, 10),
            Err(ApiError::BodyTooLarge { .. })
        ));
        assert!(matches!(
            unsnappy(&framed, 10),
            Err(ApiError::BodyTooLarge { .. })
        ));
        assert!(matches!(
            unsnappy(b"\xff\xff\xff\xff\x0f", 1 << 20),
            Err(ApiError::BadCompression { .. }) | Err(ApiError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn gzip_limits() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&[b'#'; 10_000]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert_eq!(gunzip(&compressed, 10_000).unwrap().len(), 10_000);
        assert!(matches!(
            gunzip(&compressed, 9_999),
            Err(ApiError::BodyTooLarge { .. })
        ));
        assert!(matches!(
            gunzip(b"nope", 100),
            Err(ApiError::BadCompression { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = gunzip(&bytes, 1 << 16);
            let _ = unsnappy(&bytes, 1 << 16);
            let mut framed = SNAPPY_STREAM_IDENTIFIER.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = unsnappy(&framed, 1 << 16);
            let mut gzip = vec![0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff];
            gzip.extend_from_slice(&bytes);
            let _ = gunzip(&gzip, 1 << 16);
        }
    }
}
