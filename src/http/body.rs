//! Reading a request body within the size limit and undoing its `Content-Encoding`.
//!
//! The limit applies to the bytes after decompression too, so a small gzip bomb is refused
//! with 413 before it can fill memory.

use std::io::Read;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::BodyExt;

use super::errors::ApiError;

/// Reads the whole body, refusing more than `limit` bytes on the wire or once decoded.
/// Returns the decoded body and the number of bytes received.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<(Bytes, usize), ApiError> {
    let raw = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|error| {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::BodyTooLarge { limit }
            } else {
                ApiError::BodyRead(error.to_string())
            }
        })?
        .to_bytes();
    let received = raw.len();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let decoded = match encoding.as_str() {
        "" | "identity" => raw,
        "gzip" | "x-gzip" => gunzip(&raw, limit)?,
        other => return Err(ApiError::UnsupportedEncoding(other.to_string())),
    };
    Ok((decoded, received))
}

fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, ApiError> {
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
    Ok(Bytes::from(out))
}
