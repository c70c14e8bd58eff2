//! Timestamps. Stored and returned as RFC 3339 UTC strings with millisecond precision
//! (`2026-11-22T03:15:00.123Z`): fixed width, so they sort lexically in both databases.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, formatted for storage and the API.
pub fn now() -> String {
    format_ts(Utc::now())
}

/// Formats a UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 time (any offset) and normalises it to the storage format.
pub fn parse_ts(s: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| format_ts(t.with_timezone(&Utc)))
}
