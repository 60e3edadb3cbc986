//! `GET <telemetry path>`: every pushed family merged with the gateway's own, in the text
//! or protobuf format as the `Accept` header asks.
//!
//! The store hands over pre-rendered bytes as shared chunks; this handler only adds the
//! gateway's own families, compresses when the client accepts gzip, and sets the content
//! type. An uncompressed scrape is sent chunk by chunk, never copied into one buffer. Names
//! that break the legacy rules are escaped as the `Accept` header's `escaping=` asks
//! (`underscores` unless it asks otherwise, so a scraper that does not know UTF-8 names
//! gets legacy ones).

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body::{Frame, SizeHint};

use super::errors::ApiError;
use super::AppState;
use crate::exposition::names::NameRules;
use crate::exposition::negotiate::negotiate_scrape;

pub async fn handle(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let own = app.telemetry.collect(&app.store.stats());
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let negotiated = negotiate_scrape(accept);
    let format = negotiated.format;
    let escaping = negotiated.escaping_scheme();
    let (chunks, len) = match app.store.render_chunks(&own, format, escaping) {
        Ok(rendered) => rendered,
        Err(inconsistent) => {
            tracing::error!(error = %inconsistent, "Scrape failed");
            return ApiError::Inconsistent(inconsistent.to_string()).into_response();
        }
    };
    app.remember_scrape_size(len);
    let utf8_names = app.store.name_rules() == NameRules::Utf8;
    let mut response_headers = HeaderMap::new();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&negotiated.content_type(utf8_names))
            .unwrap_or_else(|_| HeaderValue::from_static(format.content_type())),
    );
    if accepts_gzip(&headers) {
        let capacity = app.scrape_size_hint() / 8;
        let mut encoder = GzEncoder::new(Vec::with_capacity(capacity), Compression::fast());
        let written = chunks.iter().try_for_each(|chunk| encoder.write_all(chunk));
        if let (Ok(()), Ok(compressed)) = (written, encoder.finish()) {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            return (StatusCode::OK, response_headers, compressed).into_response();
        }
    }
    let body = ChunkedBody {
        chunks: chunks.into_iter(),
        remaining: len as u64,
    };
    (StatusCode::OK, response_headers, Body::new(body)).into_response()
}

/// A response body sent straight from the store's shared chunks, with its exact length.
struct ChunkedBody {
    chunks: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this.chunks.next() {
            Some(chunk) => {
                this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.chunks.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Whether `Accept-Encoding` lists gzip with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let zero_quality = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            coding.eq_ignore_ascii_case("gzip") && !zero_quality
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, GZIP;q=0.5"),
        );
        assert!(accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&headers));
    }
}
