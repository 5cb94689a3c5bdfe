//! `ApiError`: the core error as an HTTP answer. Every error body is JSON
//! `{"error": "..."}` (plus `"field"` for validation errors); 5xx bodies say nothing
//! internal, the detail goes to `tracing`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imas_core::Error;
use imas_core::engine::DownloadError;
use serde_json::json;

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    /// Seconds for `Retry-After` (429 and 503 answers).
    retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge of a 401 answer.
    challenge: Option<&'static str>,
}

/// `Retry-After` in whole seconds: rounded up, at least 1 (a client told 0
/// would retry at once).
pub(crate) fn retry_after_secs(after: std::time::Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

impl ApiError {
    /// An error with a status and a message for the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
            challenge: None,
        }
    }

    /// Adds `Retry-After` (whole seconds, rounded up, at least 1) to the answer.
    pub fn retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(retry_after_secs(after));
        self
    }

    /// Adds `WWW-Authenticate: <scheme>` (to a 401 answer).
    pub fn challenge(mut self, scheme: &'static str) -> Self {
        self.challenge = Some(scheme);
        self
    }

    /// A 400 naming the field at fault.
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid {field}: {message}"),
            field: Some(field),
            retry_after: None,
            challenge: None,
        }
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict { .. } | Error::InvalidTransition { .. } => StatusCode::CONFLICT,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::Validation { .. } => StatusCode::BAD_REQUEST,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &e {
            Error::RateLimited { retry_after, .. } | Error::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        };
        if let (Some(after), Error::Unavailable { message, .. }) = (retry_after, &e) {
            tracing::warn!(%message, "request refused: out of capacity");
            return Self::new(status, e.to_string()).retry_after(after);
        }
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
            return Self::new(status, "internal error; see the server log");
        }
        let field = match &e {
            Error::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        let answer = Self {
            status,
            message: e.to_string(),
            field,
            retry_after: None,
            challenge: None,
        };
        match retry_after {
            Some(after) => answer.retry_after(after),
            None => answer,
        }
    }
}

impl From<DownloadError> for ApiError {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::BadFormat => Self::new(StatusCode::BAD_REQUEST, e.to_string()),
            DownloadError::NotCompiledIn { .. } => {
                Self::new(StatusCode::NOT_IMPLEMENTED, e.to_string())
            }
            DownloadError::Engine(e) => e.into(),
            _ => {
                tracing::error!(error = %e, "download failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match &r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let message = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "expected a JSON body with Content-Type: application/json".into()
            }
            StatusCode::PAYLOAD_TOO_LARGE => "request body is larger than 1 MiB".into(),
            _ => format!("invalid JSON body: {}", r.body_text()),
        };
        let mut answer = Self::new(status, message);
        answer.field = json_field(&r);
        answer
    }
}

/// The field of a JSON body at fault (an unknown or server-owned field, a
/// value of the wrong type, an unknown enum value), in its JSON spelling
/// (`a.b` when nested): the path axum's `Json` extractor records. `None` for
/// malformed JSON or a problem with the body as a whole.
fn json_field(r: &JsonRejection) -> Option<String> {
    let JsonRejection::JsonDataError(e) = r else {
        return None;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(p) = s.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            let path = p.path().to_string();
            return (path != ".").then_some(path);
        }
        source = s.source();
    }
    None
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid query string: {}", r.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid path: {}", r.body_text()),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.field {
            Some(field) => json!({ "error": self.message, "field": field }),
            None => json!({ "error": self.message }),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(scheme) = self.challenge {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(scheme),
            );
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        title: Option<String>,
        assigned_to: Option<uuid::Uuid>,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    fn field(json: &str) -> Option<String> {
        let rejection = axum::Json::<Body>::from_bytes(json.as_bytes()).expect_err(json);
        let answer = ApiError::from(rejection);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{json}");
        answer.field
    }

    /// The status, `Retry-After` and body of an error's answer.
    fn answer(e: impl Into<ApiError>) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = e.into().into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 4096))
            .expect("body");
        (status, retry, serde_json::from_slice(&body).expect("json"))
    }

    #[test]
    fn each_core_error_has_its_status() {
        use imas_core::model::Status;
        let after = std::time::Duration::from_millis(1500);
        let cases: Vec<(Error, StatusCode)> = vec![
            (
                Error::NotFound { entity: "incident" },
                StatusCode::NOT_FOUND,
            ),
            (Error::conflict("stale version"), StatusCode::CONFLICT),
            (
                Error::InvalidTransition {
                    from: Status::Open,
                    to: Status::Closed,
                },
                StatusCode::CONFLICT,
            ),
            (
                Error::Forbidden {
                    message: "no".into(),
                },
                StatusCode::FORBIDDEN,
            ),
            (
                Error::Unauthorized {
                    message: "expired".into(),
                },
                StatusCode::UNAUTHORIZED,
            ),
            (Error::validation("title", "blank"), StatusCode::BAD_REQUEST),
            (
                Error::RateLimited {
                    message: "sign-in".into(),
                    retry_after: after,
                },
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                Error::Unavailable {
                    message: "hash pool".into(),
                    retry_after: after,
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::Config {
                    name: "secret".into(),
                    message: "short".into(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::Undeliverable {
                    channel: "email",
                    message: "550".into(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                Error::backend("postgres", std::io::Error::other("password=hunter2")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (e, status) in cases {
            let text = e.to_string();
            let limited = matches!(e, Error::RateLimited { .. } | Error::Unavailable { .. });
            let (got, retry, body) = answer(e);
            assert_eq!(got, status, "{text}");
            assert_eq!(retry.as_deref(), limited.then_some("2"), "{text}");
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                assert_eq!(
                    body,
                    json!({ "error": "internal error; see the server log" })
                );
            } else {
                assert_eq!(body["error"], text);
            }
        }
        let (_, _, body) = answer(Error::validation("title", "blank"));
        assert_eq!(
            body,
            json!({ "error": "invalid title: blank", "field": "title" })
        );
    }

    #[test]
    fn download_errors_have_their_status() {
        let (status, _, body) = answer(DownloadError::BadFormat);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({ "error": "Invalid format. Use 'csv' or 'pdf'." })
        );
        let (status, _, body) = answer(DownloadError::NotCompiledIn {
            format: "PDF",
            feature: "pdf",
        });
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        assert_eq!(
            body,
            json!({ "error": "PDF reports are not compiled in (feature `pdf`)" })
        );
        let (status, _, _) = answer(DownloadError::Engine(Error::Forbidden {
            message: "export reports".into(),
        }));
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_bad_json_body_names_its_field() {
        assert_eq!(field(r#"{"version": 3}"#).as_deref(), Some("version"));
        assert_eq!(
            field(r#"{"title": "t", "assignedTo": "x"}"#).as_deref(),
            Some("assignedTo")
        );
        assert_eq!(
            field(r#"{"inner": {"n": 300}}"#).as_deref(),
            Some("inner.n")
        );
        assert_eq!(field(r#"{"title": "#), None, "malformed JSON");
        assert_eq!(field(r#""text""#), None, "not an object: no field at fault");
    }
}
