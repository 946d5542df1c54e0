//! RFC 9457 problem details: every error the HTTP layer returns, mapped in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use citytwin_city::Error as CityError;
use serde::Serialize;

/// An HTTP error with a problem+json body.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// a URI naming the kind of problem
    #[serde(rename = "type")]
    pub kind: String,
    /// short summary of the kind
    pub title: String,
    /// HTTP status
    pub status: u16,
    /// what exactly is wrong with this request
    pub detail: String,
    /// the request parameter at fault, when one is
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// for a conflict: where the thing stands and what is allowed from there
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Box<Conflict>>,
    /// for 429: seconds until a retry may succeed (the `Retry-After` header)
    #[serde(skip)]
    pub retry_after: Option<std::num::NonZeroU32>,
}

/// The extension members of a 409.
#[derive(Debug, Clone, Serialize)]
pub struct Conflict {
    /// where the thing stands now
    pub state: String,
    /// what is allowed from there
    pub allowed: Vec<String>,
}

impl Problem {
    /// A problem with a status, a short kind slug and a detail.
    #[must_use]
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://citytwin.dev/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            parameter: None,
            conflict: None,
            retry_after: None,
        }
    }

    /// 404 for a thing a parameter names that does not exist (or is not the caller's to see).
    #[must_use]
    pub fn unknown(parameter: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::NOT_FOUND, "unknown", detail);
        p.parameter = Some(parameter.to_owned());
        p
    }

    /// 429 with the seconds to wait.
    #[must_use]
    pub fn too_many(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut p = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail);
        p.retry_after =
            std::num::NonZeroU32::new(u32::try_from(retry_after.max(1)).unwrap_or(u32::MAX));
        p
    }

    /// 400 naming the parameter at fault.
    #[must_use]
    pub fn bad_parameter(parameter: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::BAD_REQUEST, "invalid-parameter", detail);
        p.parameter = Some(parameter.to_owned());
        p
    }

    /// 404 for a missing resource.
    #[must_use]
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
}

impl From<CityError> for Problem {
    fn from(e: CityError) -> Self {
        match &e {
            // a layer named in a path or a parameter that does not exist (or that the caller
            // may not see): not found, naming the parameter
            CityError::UnknownLayer(name) => {
                Problem::unknown("layer", format!("unknown layer {name:?}"))
            }
            CityError::Tiles(citytwin_tiles::Error::TileOutOfRange { .. }) => {
                Problem::bad_parameter("z/x/y", e.to_string())
            }
            CityError::TooExpensive(d) => {
                Problem::new(StatusCode::BAD_REQUEST, "query-too-expensive", d.clone())
            }
            CityError::NotFound(d) => Problem::not_found(d.clone()),
            CityError::Hidden { shown, .. } => Problem::not_found(shown.clone()),
            CityError::Forbidden(d) => Problem::new(StatusCode::FORBIDDEN, "forbidden", d.clone()),
            CityError::Conflict {
                detail,
                state,
                allowed,
            } => {
                let mut p = Problem::new(StatusCode::CONFLICT, "conflict", detail.clone());
                p.conflict = Some(Box::new(Conflict {
                    state: state.clone(),
                    allowed: allowed.clone(),
                }));
                p
            }
            _ if e.is_client_error() => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-request", e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "internal error");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "the store could not answer; try again",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s.get()));
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, Problem>;
