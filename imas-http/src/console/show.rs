//! Small helpers of the console's pages: how instants are shown, ids from the
//! path, a query string read into a page error rather than a bare 400, the
//! `next` link of a keyset page, and the options of a `<select>`.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use imas_core::Error;
use imas_core::model::Cursor;

use super::PageError;

/// An instant as the pages show it: `2026-03-02 10:00 UTC`.
pub(crate) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An instant as a `datetime-local` input's value (UTC): `2026-03-02T10:00`.
pub(crate) fn local_value(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// A `datetime-local` value (or RFC 3339) read as UTC; the error names `field`.
pub(crate) fn parse_local(field: &str, raw: &str) -> Result<DateTime<Utc>, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::validation(field, "required: a date and time (UTC)"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            Error::validation(
                field,
                "expected a date and time such as 2026-03-02T09:00 (UTC)",
            )
        })
}

/// An id of the path; anything else is the 404 page (an address that names
/// nothing).
pub(crate) fn path_id<T: std::str::FromStr<Err = Error>>(
    raw: &str,
    what: &str,
) -> Result<T, PageError> {
    raw.parse::<T>()
        .map_err(|_| PageError::not_found(&format!("There is no such {what}.")))
}

/// A query string, or the 400 page saying what is wrong with it.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, PageError> {
    q.map(|Query(q)| q).map_err(|r| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid address",
            &format!("The query string is invalid: {}", r.body_text()),
        )
    })
}

/// The page a list's `limit` and `cursor` ask for; an invalid one is the
/// 400 page.
pub(crate) fn page_of(
    params: &crate::extract::ListParams,
) -> Result<imas_core::model::PageRequest, PageError> {
    params.page().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid address",
            "The page's limit or cursor is invalid.",
        )
    })
}

/// A trimmed form or query value, `None` when empty.
pub(crate) fn filled(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// The address of the next page: `path?<the filters that are set>&cursor=...`.
pub(crate) fn next_href(
    path: &str,
    filters: &[(&str, Option<&str>)],
    next: Option<Cursor>,
) -> Option<String> {
    let cursor = next?.encode();
    let mut pairs: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(k, v)| filled(*v).map(|v| (*k, v)))
        .collect();
    pairs.push(("cursor", &cursor));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    Some(format!("{path}?{query}"))
}

/// One option of a `<select>`.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    /// Its value.
    pub value: String,
    /// Its text.
    pub label: String,
    /// Whether it is the one selected.
    pub selected: bool,
}

impl Choice {
    /// The options `(value, label)`, the one equal to `current` selected.
    pub(crate) fn list<'a>(
        options: impl IntoIterator<Item = (String, String)> + 'a,
        current: Option<&str>,
    ) -> Vec<Choice> {
        options
            .into_iter()
            .map(|(value, label)| Choice {
                selected: current == Some(value.as_str()),
                value,
                label,
            })
            .collect()
    }
}
