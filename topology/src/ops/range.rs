//! Time windows for the operator commands: `--since` and `--until` as RFC 3339 instants
//! (`2026-11-22T10:00:00Z`), dates (`2026-11-22`, midnight UTC), `now`, or durations meaning that
//! long ago (`90m`, `2h`, `3d`), all turned into milliseconds since the Unix epoch.
//!
//! ```text
//! --since 2h  at 2026-11-22T12:00:00Z  ->  Window { since: Some(1795341600000), until: None }
//! ```

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// A time given on the command line that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a time: give an RFC 3339 instant (2026-11-22T10:00:00Z), a date \
     (2026-11-22), `now`, or a duration meaning that long ago (90m, 2h, 3d)"
)]
pub struct TimeError {
    pub input: String,
}

/// A half-open window of record timestamps, in milliseconds; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// The earliest timestamp included.
    pub since: Option<i64>,
    /// The latest timestamp included.
    pub until: Option<i64>,
}

impl Window {
    /// Parses `--since` and `--until` relative to `now_ms`.
    pub fn parse(since: Option<&str>, until: Option<&str>, now_ms: i64) -> Result<Self, TimeError> {
        Ok(Window {
            since: since.map(|s| parse_time(s, now_ms)).transpose()?,
            until: until.map(|s| parse_time(s, now_ms)).transpose()?,
        })
    }

    /// Whether a record stamped `at` falls inside the window.
    pub fn contains(&self, at: i64) -> bool {
        self.since.is_none_or(|since| at >= since) && self.until.is_none_or(|until| at <= until)
    }

    /// Whether a record stamped `at` is past the window's end: nothing later in its partition
    /// can be inside it.
    pub fn is_past(&self, at: i64) -> bool {
        self.until.is_some_and(|until| at > until)
    }
}

/// One time argument, in milliseconds since the epoch.
pub fn parse_time(input: &str, now_ms: i64) -> Result<i64, TimeError> {
    let text = input.trim();
    let error = || TimeError {
        input: input.to_string(),
    };
    if text.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(error)?;
        return Ok(midnight.and_utc().timestamp_millis());
    }
    let ago = humantime::parse_duration(text).map_err(|_| error())?;
    let ago_ms = i64::try_from(ago.as_millis()).map_err(|_| error())?;
    now_ms.checked_sub(ago_ms).ok_or_else(error)
}

/// An instant for people and scripts: `2026-11-22T10:00:03.120Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// An instant for a table column, to the second: `2026-11-22 10:00:03`.
pub fn format_short(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_348_800_000; // 2026-11-22T12:00:00Z

    #[test]
    fn instants_dates_and_now_are_absolute() {
        assert_eq!(
            parse_time("2026-11-22T10:00:00Z", NOW),
            Ok(NOW - 2 * 3_600_000)
        );
        assert_eq!(
            parse_time("2026-11-22T11:00:00+01:00", NOW),
            Ok(NOW - 2 * 3_600_000)
        );
        assert_eq!(parse_time("2026-11-22", NOW), Ok(NOW - 12 * 3_600_000));
        assert_eq!(parse_time(" now ", NOW), Ok(NOW));
    }

    #[test]
    fn durations_mean_that_long_ago() {
        assert_eq!(parse_time("90m", NOW), Ok(NOW - 90 * 60_000));
        assert_eq!(parse_time("2h", NOW), Ok(NOW - 2 * 3_600_000));
        assert_eq!(parse_time("3d", NOW), Ok(NOW - 3 * 86_400_000));
    }

    #[test]
    fn anything_else_is_refused_naming_the_input() {
        let error = parse_time("yesterday", NOW).unwrap_err();
        assert_eq!(error.input, "yesterday");
        assert!(error.to_string().contains("RFC 3339"), "{error}");
        assert!(parse_time("", NOW).is_err());
    }

    #[test]
    fn windows_include_both_ends_and_know_what_is_past() {
        let window = Window::parse(Some("2h"), Some("1h"), NOW).expect("valid");
        assert!(!window.contains(NOW - 3 * 3_600_000));
        assert!(window.contains(NOW - 2 * 3_600_000));
        assert!(window.contains(NOW - 3_600_000));
        assert!(!window.contains(NOW));
        assert!(window.is_past(NOW));
        assert!(!Window::default().is_past(NOW));
        assert!(Window::default().contains(0));
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(format_ms(NOW + 120), "2026-11-22T12:00:00.120Z");
        assert_eq!(format_short(NOW), "2026-11-22 12:00:00");
    }
}
