//! MLflow's error body (`{"error_code", "message"}`) and the mapping from
//! store errors to codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_store::tracking::TrackingError;
use serde_json::json;

/// An error as the MLflow client expects it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status (MLflow's `ERROR_CODE_TO_HTTP_STATUS`).
    pub status: StatusCode,
    /// MLflow `ErrorCode` name.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// `INVALID_PARAMETER_VALUE` (400).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }

    /// `BAD_REQUEST` (400).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_REQUEST",
            message: message.into(),
        }
    }

    /// `RESOURCE_DOES_NOT_EXIST` (404).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
        }
    }

    /// `ENDPOINT_NOT_FOUND` (404).
    pub fn no_endpoint(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "ENDPOINT_NOT_FOUND",
            message: message.into(),
        }
    }

    /// `UNAUTHENTICATED` (401).
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED",
            message: message.into(),
        }
    }

    /// `PERMISSION_DENIED` (403).
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "PERMISSION_DENIED",
            message: message.into(),
        }
    }

    /// `INTERNAL_ERROR` (500): never for bad input.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_ERROR",
            message: message.into(),
        }
    }

    /// A missing required field.
    pub fn missing(field: &str) -> ApiError {
        ApiError::invalid(format!("Missing value for required parameter '{field}'."))
    }
}

impl From<TrackingError> for ApiError {
    fn from(e: TrackingError) -> ApiError {
        // Exhaustive on purpose: a new variant must be mapped here.
        match e {
            TrackingError::NotFound(m) => ApiError::not_found(m),
            TrackingError::AlreadyExists(m) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "RESOURCE_ALREADY_EXISTS",
                message: m,
            },
            TrackingError::Invalid(m) => ApiError::invalid(m),
            TrackingError::Unauthenticated(m) => ApiError::unauthenticated(m),
            TrackingError::Store(inner) => {
                // The store's own message names files and DB URLs; log it,
                // and give the client a generic message.
                eprintln!("keel server: internal error: {inner}");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "INTERNAL_ERROR",
                    message: "internal error in keel's stores; see the server log".into(),
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error_code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
