//! The admin API, only routed with `--web.enable-admin-api`: `PUT /api/v1/admin/wipe`.
//!
//! Without the flag the route does not exist and the path answers 404, as upstream's does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::errors::ApiError;
use super::AppState;

/// `PUT /api/v1/admin/wipe`: removes every group at once and answers 202.
///
/// Upstream queues one delete per group, so a push racing the wipe may survive it; ours
/// swaps the whole store in one step.
pub async fn wipe(State(app): State<AppState>) -> Response {
    let response = match app.store.wipe().await {
        Ok(()) => {
            tracing::info!("Wiped every group via the admin API");
            StatusCode::ACCEPTED.into_response()
        }
        Err(error) => ApiError::from(error).into_response(),
    };
    app.telemetry
        .count_request("wipe", "put", response.status().as_u16());
    response
}

/// Any method but `PUT` and `OPTIONS` on the wipe path.
pub async fn wipe_wrong_method() -> Response {
    ApiError::MethodNotAllowed {
        message: "Method Not Allowed",
        allow: "OPTIONS, PUT",
    }
    .into_response()
}
