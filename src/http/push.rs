//! `PUT`, `POST` and `DELETE` on `/metrics/job/<job>{/<label>/<value>}`.
//!
//! The handler turns the request into a grouping key and parsed families, hands them to the
//! store, and turns the verdict into a status: 200 for a checked push, 202 for an unchecked
//! one and for a delete, 400 with a message for anything refused.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::body::{content_length, read_body};
use super::errors::ApiError;
use super::AppState;
use crate::config::parse_duration;
use crate::exposition::names::NameRules;
use crate::exposition::negotiate::{push_format, PushFormat};
use crate::exposition::protobuf::decode_delimited;
use crate::exposition::text_parse::parse_text_with;
use crate::grouping::{parse_push_path_with, GroupingKey};
use crate::store::{PushMode, PushOutcome};

pub async fn handle(State(app): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    // Taken apart rather than extracted piece by piece: the extractors would copy the
    // headers and the URI of every push.
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let handler = if method == Method::DELETE {
        "delete"
    } else {
        "push"
    };
    let result = route(&app, &method, &uri, &headers, body).await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_client_error() {
                tracing::debug!(%method, path = uri.path(), error = %error, "Push refused");
            }
            if let Some(reason) = error.rejection_reason() {
                app.telemetry.count_rejection(reason);
            }
            error.into_response()
        }
    };
    if method == Method::PUT || method == Method::POST {
        let size = content_length(&headers).unwrap_or(0);
        app.telemetry
            .observe_push(method.as_str(), started.elapsed().as_secs_f64(), size);
    }
    app.telemetry
        .count_request(handler, method.as_str(), response.status().as_u16());
    response
}

async fn route(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = grouping_key(uri, app.store.name_rules())?;
    match *method {
        Method::PUT => push(app, key, headers, body, PushMode::Replace).await,
        Method::POST => push(app, key, headers, body, PushMode::Merge).await,
        Method::DELETE => {
            app.store.delete(&key).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => Err(ApiError::MethodNotAllowed {
            message: "Method Not Allowed",
            allow: "PUT, POST, DELETE",
        }),
    }
}

/// The header a push sets its group's own TTL with.
pub const GROUP_TTL_HEADER: &str = "pushgateway-group-ttl";

/// The group's own TTL from the `Pushgateway-Group-TTL` header, if the push sets one.
fn group_ttl(headers: &HeaderMap) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(value) = headers.get(GROUP_TTL_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadTtl("not ASCII".into()))?;
    parse_duration(text.trim())
        .map(Some)
        .map_err(ApiError::BadTtl)
}

/// Reads the grouping key from the (route-prefix-stripped) path.
fn grouping_key(uri: &Uri, names: NameRules) -> Result<GroupingKey, ApiError> {
    let rest = uri
        .path()
        .strip_prefix("/metrics/")
        .ok_or(ApiError::NotFound)?;
    let decoded = percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| ApiError::PathNotUtf8)?;
    parse_push_path_with(&decoded, names)?.ok_or(ApiError::NotFound)
}

async fn push(
    app: &AppState,
    key: GroupingKey,
    headers: &HeaderMap,
    body: Body,
    mode: PushMode,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let ttl = group_ttl(headers)?;
    let format = push_format(content_type);
    if let PushFormat::UnsupportedProtobuf(content_type) = format {
        return Err(ApiError::UnsupportedContentType(content_type));
    }
    let (body, _) = read_body(body, headers, app.max_body_bytes).await?;
    let families = match format {
        PushFormat::Protobuf => decode_delimited(&body)?,
        _ => parse_text_with(&body, app.store.name_rules())?,
    };
    let outcome = app.store.push_with_ttl(key, families, mode, ttl).await?;
    Ok(match outcome {
        PushOutcome::Applied => StatusCode::OK.into_response(),
        PushOutcome::AppliedUnchecked => StatusCode::ACCEPTED.into_response(),
    })
}
