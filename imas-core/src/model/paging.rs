//! Keyset pagination: the opaque [`Cursor`], a [`PageRequest`] (size and
//! position) and the [`Page`] a list returns, newest first.

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::{Timestamp, check_instant};
use crate::error::{Error, Result};

/// An opaque keyset-pagination position: the `(created_at, id)` of the last item
/// of the previous page, in descending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// `created_at` of the last item seen.
    pub created_at: Timestamp,
    /// Its id, which breaks ties.
    pub id: Uuid,
}

impl Cursor {
    /// The cursor that continues after an item.
    pub fn after(created_at: Timestamp, id: Uuid) -> Self {
        Self { created_at, id }
    }

    /// Text form for URLs: `<millis>.<uuid in hex>`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.timestamp_millis(),
            self.id.simple()
        )
    }

    /// Parses [`Cursor::encode`]'s output. A position outside the years
    /// [`MIN_YEAR`](super::MIN_YEAR)..=[`MAX_YEAR`](super::MAX_YEAR) is no cursor IMAS made: a validation error.
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || {
            Error::validation(
                "cursor",
                "expected a cursor from a previous page's next link",
            )
        };
        let (ms, id) = s.split_once('.').ok_or_else(bad)?;
        let ms: i64 = ms.parse().map_err(|_| bad())?;
        let created_at = Utc.timestamp_millis_opt(ms).single().ok_or_else(bad)?;
        check_instant("cursor", created_at).map_err(|_| bad())?;
        let id = Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }

    /// Checks that the position is one [`Cursor::decode`] accepts.
    pub fn validate(&self) -> Result<()> {
        check_instant("cursor", self.created_at).map(drop)
    }

    /// Whether an item at `(created_at, id)` comes after this cursor in
    /// newest-first order.
    pub fn precedes(&self, created_at: Timestamp, id: Uuid) -> bool {
        (created_at, id) < (self.created_at, self.id)
    }
}

/// One page of a newest-first list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 500;

/// Page size and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    /// 1..=[`MAX_LIMIT`].
    pub limit: u32,
    /// Continue after this position.
    pub cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// A first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            cursor: None,
        }
    }

    /// Checks the limit bounds and the cursor's position.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(Error::validation(
                "limit",
                format!("expected a number from 1 to {MAX_LIMIT}"),
            ));
        }
        self.cursor.as_ref().map_or(Ok(()), Cursor::validate)
    }
}
