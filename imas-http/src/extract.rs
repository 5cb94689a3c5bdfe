//! Extractors: the authenticated caller, JSON bodies whose rejections are JSON
//! errors, and list parameters parsed with errors that name the parameter.

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use imas_core::model::{
    AlertStatus, Cursor, DEFAULT_LIMIT, MAX_LIMIT, PageRequest, Priority, ServiceId, Status,
    Timestamp, UserId, check_instant, truncate_millis,
};
use imas_core::{Error, Principal};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

/// A JSON body; malformed JSON, unknown fields, a wrong content type and an
/// oversized body are JSON errors (400, 400, 415, 413).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// The client's address, from the connection (`ConnectInfo<SocketAddr>`, which
/// the server inserts); `None` when the host serves without it. Forwarding
/// headers are not trusted.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The authenticated caller: `Authorization: Bearer <jwt>`, else 401.
#[derive(Debug, Clone, Copy)]
pub struct Auth(pub Principal);

/// The token of `Authorization: Bearer <token>`, `None` without the header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, "malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "expected Authorization: Bearer <token>",
        )),
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token>",
            )
        })?;
        Ok(Auth(state.engine.authenticate(token).await?))
    }
}

impl OptionalFromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match bearer(&parts.headers)? {
            Some(token) => Ok(Some(Auth(state.engine.authenticate(token).await?))),
            None => Ok(None),
        }
    }
}

/// The query parameters of list routes, as text; see the `parse_*` helpers. (The
/// OpenAPI document describes each route's own: [`PageQuery`], [`IncidentQuery`],
/// [`AuditQuery`].)
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `limit` (1..=500, default 50).
    pub limit: Option<String>,
    /// `cursor` from a `Link: rel="next"` header.
    pub cursor: Option<String>,
    /// Status, or several separated by commas.
    pub status: Option<String>,
    /// Priority, or several separated by commas.
    pub priority: Option<String>,
    /// Assignee id.
    pub assigned_to: Option<String>,
    /// Service id (incidents, alerts).
    pub service_id: Option<String>,
    /// Full-text query.
    pub q: Option<String>,
    /// Created at or after (RFC 3339 or YYYY-MM-DD).
    pub start_date: Option<String>,
    /// Created at or before (RFC 3339 or YYYY-MM-DD, inclusive of that day).
    pub end_date: Option<String>,
    /// Audit: action.
    pub action: Option<String>,
    /// Audit: actor (user id or SYSTEM).
    pub actor: Option<String>,
    /// Audit: target.
    pub target: Option<String>,
    /// Audit: from (alias of startDate).
    pub from: Option<String>,
    /// Audit: to (alias of endDate).
    pub to: Option<String>,
}

// What the OpenAPI document says of each list route's query: the handlers read
// [`ListParams`] (every field as text, parsed with errors that name the
// parameter); these types describe, per route, the parameters it reads and the
// values it accepts.

/// `limit` and `cursor`: the query of every list route.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageQuery {
    /// Page size (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Where the page starts: the `cursor` of a `Link: <...>; rel="next"` header.
    cursor: Option<String>,
}

/// The filters of `GET /incidents`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct IncidentQuery {
    /// Any of these statuses (several separated by commas).
    #[param(style = Form, explode = false, value_type = Option<Vec<Status>>)]
    status: Option<String>,
    /// Any of these priorities (several separated by commas).
    #[param(style = Form, explode = false, value_type = Option<Vec<Priority>>)]
    priority: Option<String>,
    /// Assigned to this user.
    #[param(rename = "assignedTo")]
    assigned_to: Option<UserId>,
    /// Of this service.
    #[param(rename = "serviceId")]
    service_id: Option<ServiceId>,
    /// Full-text search: every word must appear in the title or description
    /// (whole words, case-insensitive; at most 32 words of at most 64 characters).
    q: Option<String>,
    /// Created at or after (RFC 3339, or YYYY-MM-DD for the start of that day);
    /// years 1 to 9999.
    #[param(rename = "startDate", value_type = Option<chrono::DateTime<Utc>>)]
    start_date: Option<String>,
    /// Created at or before (RFC 3339, or YYYY-MM-DD for the whole of that day);
    /// years 1 to 9999.
    #[param(rename = "endDate", value_type = Option<chrono::DateTime<Utc>>)]
    end_date: Option<String>,
}

/// The filters of `GET /alerts`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AlertQuery {
    /// Of this service.
    #[param(rename = "serviceId")]
    service_id: Option<ServiceId>,
    /// In this status.
    status: Option<AlertStatus>,
    /// Full-text search: every word must appear in the summary (whole words,
    /// case-insensitive; at most 32 words of at most 64 characters).
    q: Option<String>,
}

/// The filters of `GET /audit`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditQuery {
    /// This action.
    #[param(value_type = Option<imas_core::model::AuditAction>)]
    action: Option<String>,
    /// By this actor: a user id, or `SYSTEM`.
    actor: Option<String>,
    /// About this target (an incident or user id, or a username).
    target: Option<String>,
    /// At or after (RFC 3339 or YYYY-MM-DD); years 1 to 9999.
    #[param(value_type = Option<chrono::DateTime<Utc>>)]
    from: Option<String>,
    /// At or before (RFC 3339 or YYYY-MM-DD, inclusive of that day).
    #[param(value_type = Option<chrono::DateTime<Utc>>)]
    to: Option<String>,
    /// Alias of `from` (used when `from` is absent).
    #[param(rename = "startDate", value_type = Option<chrono::DateTime<Utc>>)]
    start_date: Option<String>,
    /// Alias of `to` (used when `to` is absent).
    #[param(rename = "endDate", value_type = Option<chrono::DateTime<Utc>>)]
    end_date: Option<String>,
}

impl ListParams {
    /// The page requested.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid("limit", format!("expected a number from 1 to {MAX_LIMIT}"))
                })?,
        };
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(Cursor::decode(c).map_err(ApiError::from)?),
        };
        Ok(PageRequest { limit, cursor })
    }
}

// The parsers below return the core's validation errors (answered 400 naming
// the parameter), so that a report's filter error can be handed to the engine,
// which answers it after its permission check.

/// Parses a comma-separated list of enum values; the error names the field.
pub fn parse_list<T: std::str::FromStr<Err = Error>>(value: Option<&str>) -> Result<Vec<T>, Error> {
    match value {
        None | Some("") => Ok(Vec::new()),
        Some(v) => v.split(',').map(|p| p.trim().parse::<T>()).collect(),
    }
}

/// Statuses from `status=open,in-progress`.
pub fn statuses(value: Option<&str>) -> Result<Vec<Status>, Error> {
    parse_list(value)
}

/// Priorities from `priority=high,critical`.
pub fn priorities(value: Option<&str>) -> Result<Vec<Priority>, Error> {
    parse_list(value)
}

/// A user id parameter.
pub fn user_id(field: &str, value: Option<&str>) -> Result<Option<UserId>, Error> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::validation(field, "expected a user id (a UUID)")),
    }
}

/// A service id parameter.
pub fn service_id(field: &str, value: Option<&str>) -> Result<Option<ServiceId>, Error> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Error::validation(field, "expected a service id (a UUID)")),
    }
}

/// An alert status parameter (one status).
pub fn alert_status(value: Option<&str>) -> Result<Option<AlertStatus>, Error> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => v.trim().parse().map(Some),
    }
}

/// A date parameter: RFC 3339, or `YYYY-MM-DD` (the start of that day, or with
/// `end_of_day` its last millisecond).
pub fn date(
    field: &str,
    value: Option<&str>,
    end_of_day: bool,
) -> Result<Option<Timestamp>, Error> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let t = match DateTime::parse_from_rfc3339(v) {
        Ok(t) => Some(truncate_millis(t.with_timezone(&Utc))),
        Err(_) => {
            let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                Error::validation(
                    field,
                    "expected a date such as 2026-01-31 or 2026-01-31T12:00:00Z",
                )
            })?;
            let t = if end_of_day {
                day.and_hms_milli_opt(23, 59, 59, 999)
            } else {
                day.and_hms_opt(0, 0, 0)
            };
            t.map(|t| t.and_utc())
        }
    };
    t.map(|t| check_instant(field, t)).transpose()
}

/// The instants of the on-call routes, as text (see [`instant`]): `at` of
/// `GET /schedules/{id}/on-call` and `GET /oncall`; `start` and `end` of the
/// shifts routes. (The OpenAPI document describes them with [`AtQuery`] and
/// [`RangeQuery`].)
#[derive(Debug, Default, Deserialize)]
pub struct InstantParams {
    /// `at`.
    pub at: Option<String>,
    /// `start`.
    pub start: Option<String>,
    /// `end`.
    pub end: Option<String>,
}

/// `at`: the instant of an on-call answer.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AtQuery {
    /// The instant (RFC 3339, e.g. 2026-03-29T09:00:00+02:00; years 1 to
    /// 9999); now when absent.
    #[param(value_type = Option<chrono::DateTime<Utc>>)]
    at: Option<String>,
}

/// `start` and `end`: the range `[start, end)` of a shifts answer, at most 90
/// days.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RangeQuery {
    /// Start of the range (RFC 3339; years 1 to 9999).
    #[param(value_type = chrono::DateTime<Utc>)]
    start: String,
    /// End of the range, after `start`, at most 90 days after it (RFC 3339).
    #[param(value_type = chrono::DateTime<Utc>)]
    end: String,
}

/// An instant parameter: RFC 3339 only (`2026-03-29T09:00:00Z`,
/// `...+02:00`), to the millisecond; else a validation error naming it.
pub fn instant(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, Error> {
    let Some(v) = value else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(v.trim()).map_err(|_| {
        Error::validation(
            field,
            "expected an RFC 3339 instant such as 2026-03-29T09:00:00Z",
        )
    })?;
    check_instant(field, truncate_millis(t.with_timezone(&Utc))).map(Some)
}

/// A required instant parameter (see [`instant`]).
pub fn required_instant(field: &str, value: Option<&str>) -> Result<Timestamp, Error> {
    instant(field, value)?.ok_or_else(|| {
        Error::validation(
            field,
            "required: an RFC 3339 instant such as 2026-03-29T09:00:00Z",
        )
    })
}
