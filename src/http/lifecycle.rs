//! `/-/healthy`, `/-/ready` and `/-/quit`.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;
use super::AppState;

pub async fn healthy(State(app): State<AppState>, method: Method) -> Response {
    app.telemetry.count_request("healthy", method.as_str(), 200);
    (StatusCode::OK, "OK").into_response()
}

/// 200 while the gateway can take pushes; 503 with the reason while persisting fails or
/// unchecked pushes have left the store inconsistent (upstream stays green then).
pub async fn ready(State(app): State<AppState>, method: Method) -> Response {
    let (status, body) = match app.store.unready_reason() {
        None => (StatusCode::OK, "OK".to_string()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Not ready: {reason}\n"),
        ),
    };
    app.telemetry
        .count_request("ready", method.as_str(), status.as_u16());
    (status, body).into_response()
}

/// `PUT`/`POST /-/quit`: starts a graceful shutdown when `--web.enable-lifecycle` is given.
pub async fn quit(State(app): State<AppState>) -> Response {
    if !app.enable_lifecycle {
        return ApiError::LifecycleDisabled.into_response();
    }
    tracing::info!("Received quit request via the web API");
    app.shutdown.trigger();
    (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
}

/// Any other method on `/-/quit`.
pub async fn quit_wrong_method() -> Response {
    ApiError::MethodNotAllowed {
        message: "Only POST or PUT requests allowed.",
        allow: "POST, PUT",
    }
    .into_response()
}
