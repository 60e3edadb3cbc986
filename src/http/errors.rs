//! The one place where errors become HTTP responses.
//!
//! Handlers return [`ApiError`]; each variant knows its status code, and the body is the
//! message as plain text, as upstream answers (`http.Error`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::exposition::protobuf::ProtobufError;
use crate::exposition::text_parse::TextParseError;
use crate::grouping::GroupingError;
use crate::store::{LimitError, PersistError, PushError, ValidationError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadPath(#[from] GroupingError),
    #[error("the URL path is not valid UTF-8 once percent-decoded")]
    PathNotUtf8,
    #[error("{0}")]
    Parse(#[from] TextParseError),
    #[error("{0}")]
    Protobuf(#[from] ProtobufError),
    #[error("pushed metrics are invalid or inconsistent with existing metrics: {0}")]
    Rejected(#[from] ValidationError),
    #[error("request body is larger than the limit of {limit} bytes (--push.max-body-bytes)")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("could not decompress the {encoding} request body: {reason}")]
    BadCompression {
        encoding: &'static str,
        reason: String,
    },
    #[error("unsupported Content-Encoding {0:?} (supported: gzip, snappy, identity)")]
    UnsupportedEncoding(String),
    #[error("unsupported Content-Type {0:?}: protobuf pushes must be proto=io.prometheus.client.MetricFamily; encoding=delimited")]
    UnsupportedContentType(String),
    #[error("404 page not found")]
    NotFound,
    #[error("{message}")]
    MethodNotAllowed {
        message: &'static str,
        allow: &'static str,
    },
    #[error("Lifecycle API is not enabled.")]
    LifecycleDisabled,
    #[error("{0}")]
    Inconsistent(String),
    #[error("{0}")]
    NotDurable(#[from] PersistError),
    #[error("{0}")]
    OverLimit(#[from] LimitError),
    #[error("invalid Pushgateway-Group-TTL header: {0} (use a duration such as 90s, 15m, 2h or 7d; 0 never expires)")]
    BadTtl(String),
}

impl From<PushError> for ApiError {
    fn from(error: PushError) -> ApiError {
        match error {
            PushError::Rejected(error) => ApiError::Rejected(error),
            PushError::NotDurable(error) => ApiError::NotDurable(error),
            PushError::OverLimit(error) => ApiError::OverLimit(error),
        }
    }
}

impl ApiError {
    /// The `reason` label of `pushgateway_push_rejected_total` for a refused push or delete;
    /// `None` for answers that are not a refusal of one (wrong path or method).
    pub fn rejection_reason(&self) -> Option<&'static str> {
        Some(match self {
            ApiError::Rejected(error) => error.reason(),
            ApiError::OverLimit(error) => error.reason(),
            ApiError::BadPath(_) | ApiError::PathNotUtf8 => "invalid_path",
            ApiError::Parse(_) | ApiError::Protobuf(_) => "invalid_body",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::BodyRead(_) | ApiError::BadCompression { .. } => "unreadable_body",
            ApiError::UnsupportedEncoding(_) | ApiError::UnsupportedContentType(_) => {
                "unsupported_format"
            }
            ApiError::NotDurable(_) => "persistence_failed",
            ApiError::BadTtl(_) => "invalid_ttl",
            ApiError::Inconsistent(_) => "store_inconsistent",
            ApiError::NotFound
            | ApiError::MethodNotAllowed { .. }
            | ApiError::LifecycleDisabled => return None,
        })
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadPath(_)
            | ApiError::PathNotUtf8
            | ApiError::Parse(_)
            | ApiError::Protobuf(_)
            | ApiError::Rejected(_)
            | ApiError::BodyRead(_)
            | ApiError::BadCompression { .. }
            | ApiError::BadTtl(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) | ApiError::UnsupportedContentType(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::LifecycleDisabled => StatusCode::FORBIDDEN,
            ApiError::Inconsistent(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // The disk is full or failing: a retry later may well succeed.
            ApiError::NotDurable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::OverLimit(LimitError::SeriesPerPush { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::OverLimit(LimitError::LabelLength { .. }) => StatusCode::BAD_REQUEST,
            // The store is full: room may come back as groups are deleted or expire.
            ApiError::OverLimit(LimitError::Groups { .. } | LimitError::Series { .. }) => {
                StatusCode::TOO_MANY_REQUESTS
            }
        }
    }
}

/// A plain-text answer, as Go's `http.Error` writes one: the text and a newline.
pub fn plain_text(status: StatusCode, text: &str) -> Response {
    let mut response = (status, format!("{text}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = plain_text(self.status(), &self.to_string());
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}
