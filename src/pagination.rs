//! Cursor pagination: `limit` (1–100, default 20) and an opaque `cursor` taken from the
//! previous page's `nextCursor`. Lists are newest first, keyed by an increasing
//! sequence number, so a page is stable while new rows arrive.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

/// A validated page request.
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// Validates `limit` (1–100) and keeps `cursor` opaque until used.
    pub fn new(limit: Option<u32>, cursor: Option<String>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::validation("limit", "must be between 1 and 100"));
        }
        Ok(PageRequest {
            limit,
            cursor: cursor.filter(|c| !c.is_empty()),
        })
    }

    /// The sequence number encoded in the cursor; 400 `VALIDATION_ERROR` naming
    /// `cursor` when it is not one of ours.
    pub fn cursor_seq(&self) -> Result<Option<i64>> {
        let Some(c) = &self.cursor else {
            return Ok(None);
        };
        let bad = || Error::validation("cursor", "is not a cursor returned by this API");
        let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let seq = text
            .strip_prefix("s:")
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(bad)?;
        Ok(Some(seq))
    }
}

/// Encodes a sequence number as an opaque cursor.
pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("s:{seq}"))
}

/// One page of results.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// From `limit + 1` fetched rows: the extra row only signals `has_more`.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, seq: impl Fn(&T) -> i64) -> Page<T> {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|r| encode_cursor(seq(r)))
        } else {
            None
        };
        Page {
            items: rows,
            has_more,
            next_cursor,
        }
    }
}
