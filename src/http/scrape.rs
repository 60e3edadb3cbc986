//! `GET <telemetry path>`: every pushed family merged with the gateway's own, in the text
//! or protobuf format as the `Accept` header asks.
//!
//! The store hands over pre-rendered bytes; this handler only adds the gateway's own
//! families, compresses when the client accepts gzip, and sets the content type.

use std::io::Write;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::errors::ApiError;
use super::AppState;
use crate::exposition::negotiate::negotiate_scrape;

pub async fn handle(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let own = app.telemetry.collect();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let negotiated = negotiate_scrape(accept);
    let format = negotiated.format;
    let mut body = Vec::with_capacity(app.scrape_size_hint());
    if let Err(inconsistent) = app.store.render(&own, format, &mut body) {
        tracing::error!(error = %inconsistent, "Scrape failed");
        return ApiError::Inconsistent(inconsistent.to_string()).into_response();
    }
    app.remember_scrape_size(body.len());
    let mut response_headers = HeaderMap::new();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&negotiated.content_type())
            .unwrap_or_else(|_| HeaderValue::from_static(format.content_type())),
    );
    if accepts_gzip(&headers) {
        let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        if encoder.write_all(&body).is_ok() {
            if let Ok(compressed) = encoder.finish() {
                response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                response_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
                return (StatusCode::OK, response_headers, compressed).into_response();
            }
        }
    }
    (StatusCode::OK, response_headers, body).into_response()
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
