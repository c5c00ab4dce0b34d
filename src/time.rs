//! Times and durations: the clock (or `--now`), the one text form of a unix time, and the one
//! syntax of times and durations every flag and profile takes. A leaf, like `error`: every
//! module may use it.

use std::time::Duration;

/// Now, as unix seconds: `--now` when given, else the system clock.
pub fn unix_now(fixed: Option<i64>) -> i64 {
    fixed.unwrap_or_else(|| chrono::Utc::now().timestamp())
}

/// The latest time `--now` takes, 9999-12-31T23:59:59Z; the earliest is 1970-01-01T00:00:00Z.
/// Outside those, dates cannot be printed and ages overflow.
const LATEST_TIME: i64 = 253_402_300_799;

/// A point in time as unix seconds: `1766102400` or `2025-12-19T00:00:00Z`, from 1970 to 9999.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let seconds = match text.parse::<i64>() {
        Ok(seconds) => seconds,
        Err(_) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp())
            .map_err(|e| format!("{e}: expected unix seconds or an RFC 3339 time such as 2025-12-19T08:00:00Z, got {text:?}"))?,
    };
    if !(0..=LATEST_TIME).contains(&seconds) {
        return Err(format!(
            "{text:?} is outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z, the times \
             keysync takes"
        ));
    }
    Ok(seconds)
}

/// The longest duration any flag takes: 100 years. Longer ones cannot mean anything here, and
/// adding them to a clock overflows it (`--wait 500000000000y` once panicked).
pub const LONGEST_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// The one duration syntax of every command: `500ms`, `30s`, `15m`, `12h`, `7d`, `2w`, at most
/// [`LONGEST_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{e}: expected a duration such as 500ms, 30s, 15m, 12h, 7d or 2w, got {text:?}")
    })?;
    if duration > LONGEST_DURATION {
        return Err(format!(
            "{text:?} is longer than 100 years, the longest duration keysync takes"
        ));
    }
    Ok(duration)
}

/// A duration that must be longer than zero: a timeout, an interval, a window, a retention.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "{text:?} is zero, which cannot work here: give a duration longer than 0s, such \
             as 15m or 7d"
        ));
    }
    Ok(duration)
}

/// A unix time as people read it, `2025-12-19 08:00:00Z` (UTC; RFC 3339, so `diff` accepts it
/// back). `-1` is the API's "never" (e.g. `expired_time`).
pub fn readable_time(unix: i64) -> String {
    if unix == -1 {
        return "never".to_string();
    }
    // Formatted field by field: strftime parses its pattern on every call, and a history or
    // diff table formats thousands of times.
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| {
            use chrono::{Datelike, Timelike};
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        },
    )
}

/// A unix time as RFC 3339 with a `T`, `2025-12-19T08:00:00Z`: the form of times in JSON that
/// monitoring tools parse.
pub fn rfc3339_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_every_documented_form() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("100y"), Ok(LONGEST_DURATION));
        assert!(
            parse_duration("101y")
                .unwrap_err()
                .contains("longer than 100 years")
        );
        assert!(parse_duration("500000000000y").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(
            parse_positive_duration("0s")
                .unwrap_err()
                .contains("is zero")
        );
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn times_take_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1766102400"), Ok(1_766_102_400));
        assert_eq!(parse_time("2025-12-19T00:00:00Z"), Ok(1_766_102_400));
        assert_eq!(parse_time("2025-12-19T08:00:00+08:00"), Ok(1_766_102_400));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("9999-12-31T23:59:59Z"), Ok(LATEST_TIME));
        assert!(parse_time("-1").is_err());
        assert!(parse_time("9223372036854775807").is_err());
    }

    #[test]
    fn json_times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339_time(1_766_102_400), "2025-12-19T00:00:00Z");
        assert_eq!(rfc3339_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time(&rfc3339_time(1_766_131_201)), Ok(1_766_131_201));
    }
}
