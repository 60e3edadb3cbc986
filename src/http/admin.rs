//! The admin API, only routed with `--web.enable-admin-api`: `PUT /api/v1/admin/wipe`.
//!
//! Without the flag the route does not exist and the path answers 404, as upstream's does.

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::api_v1::{bad_data, respond, selection};
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

/// `DELETE /api/v1/admin/groups?match[]=SELECTOR…` (ours): deletes every group whose
/// grouping labels match any selector, in one atomic and durable step; answers 200 with the
/// number deleted.
pub async fn delete_groups(State(app): State<AppState>, method: Method, uri: Uri) -> Response {
    let response = match selection(&uri) {
        Err(error) => bad_data(&error.to_string()),
        Ok(selection) => {
            let deleted = app
                .store
                .delete_where(|keys| {
                    keys.iter()
                        .filter(|key| selection.matches(key))
                        .cloned()
                        .collect()
                })
                .await;
            match deleted {
                Ok(deleted) => {
                    tracing::info!(
                        deleted,
                        query = uri.query().unwrap_or(""),
                        "Deleted groups by matcher via the admin API"
                    );
                    respond(&serde_json::json!({ "deleted": deleted }))
                }
                Err(error) => ApiError::from(error).into_response(),
            }
        }
    };
    app.telemetry.count_request(
        "api/v1/admin/groups",
        method.as_str(),
        response.status().as_u16(),
    );
    response
}

/// Any method but `DELETE` and `OPTIONS` on the groups path.
pub async fn groups_wrong_method() -> Response {
    ApiError::MethodNotAllowed {
        message: "Method Not Allowed",
        allow: "DELETE, OPTIONS",
    }
    .into_response()
}

/// Any method but `PUT` and `OPTIONS` on the wipe path.
pub async fn wipe_wrong_method() -> Response {
    ApiError::MethodNotAllowed {
        message: "Method Not Allowed",
        allow: "OPTIONS, PUT",
    }
    .into_response()
}
