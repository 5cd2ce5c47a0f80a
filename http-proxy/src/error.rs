//! [`ProxyError`]: every refusal the HTTP API gives, and its one mapping to a
//! status and the JSON body `{"success":false,"error":"..."}`.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;

use depot_schemas::wire::ErrorCode;

use crate::broker_link::LinkError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    /// The body stopped arriving; the connection closes with the answer.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A limit of the broker's was reached (logins waiting, stations held);
    /// the message names it.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

/// The status for a broker error code, shared by whole requests and by the
/// messages of a batch.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::StationNotFound
        | ErrorCode::SubscriptionNotFound
        | ErrorCode::SchemaNotFound
        | ErrorCode::DeadLetterNotFound
        | ErrorCode::ConsumerNotFound
        | ErrorCode::DeliveryNotFound => StatusCode::NOT_FOUND,
        ErrorCode::SchemaExists | ErrorCode::SchemaInUse | ErrorCode::StationExists => {
            StatusCode::CONFLICT
        }
        ErrorCode::MessageTooLarge | ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BadRequest
        | ErrorCode::InvalidStationName
        | ErrorCode::UndecodableFrame
        | ErrorCode::UnknownOperation
        | ErrorCode::UnsupportedVersion
        | ErrorCode::InvalidSchema
        | ErrorCode::SchemaValidationFailed => StatusCode::BAD_REQUEST,
        ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal | ErrorCode::Unspecified => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<LinkError> for ProxyError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::Unavailable(reason) => Self::Unavailable(reason),
            LinkError::Refused { code, message } => match status_of(code) {
                StatusCode::UNAUTHORIZED => Self::Unauthorized(message),
                StatusCode::FORBIDDEN => Self::Forbidden(message),
                StatusCode::NOT_FOUND => Self::NotFound(message),
                StatusCode::BAD_REQUEST => Self::BadRequest(message),
                StatusCode::CONFLICT => Self::Conflict(message),
                StatusCode::PAYLOAD_TOO_LARGE => Self::MessageTooLarge(message),
                StatusCode::TOO_MANY_REQUESTS => Self::TooManyRequests(message),
                _ => Self::Internal(message),
            },
        }
    }
}

impl ResponseError for ProxyError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } | Self::MessageTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::RequestTimeout(_) = self {
            // The rest of the body may still come: the framing is lost.
            response.force_close();
        }
        response.json(json!({
            "success": false,
            "error": self.to_string(),
        }))
    }
}
