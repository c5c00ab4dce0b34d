//! Times and durations: the clock (or `--now`), the one text form of a unix time, and the one
//! syntax of times and durations every flag and profile takes. A leaf, like `error`: every
//! module may use it.

use std::time::Duration;

use chrono::{Datelike, Months, NaiveDate, NaiveTime};

/// Now, as unix seconds: `--now` when given, else the system clock.
pub(crate) fn unix_now(fixed: Option<i64>) -> i64 {
    fixed.unwrap_or_else(|| chrono::Utc::now().timestamp())
}

/// The latest time `--now` takes, 9999-12-31T23:59:59Z; the earliest is 1970-01-01T00:00:00Z.
/// Outside those, dates cannot be printed and ages overflow.
const LATEST_TIME: i64 = 253_402_300_799;

const DAY: i64 = 86_400;

/// `--now`: unix seconds, an RFC 3339 time, or a [`Day`], from 1970 to 9999. `today` and
/// `yesterday` are read from the system clock: this is the flag that fixes "now" for the rest.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Some(day) = parse_day(text)? {
        return Ok(day.midnight(unix_now(None)));
    }
    parse_instant(text)?.ok_or_else(|| {
        format!(
            "expected unix seconds, an RFC 3339 time such as 2025-12-19T08:00:00Z, a date \
             such as 2025-12-19, today or yesterday, got {:?}",
            text.trim()
        )
    })
}

/// Unix seconds or an RFC 3339 time; `None` when the text is neither, an error when it is one
/// outside the times keysync takes.
fn parse_instant(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    let seconds = match text.parse::<i64>() {
        Ok(seconds) => seconds,
        Err(_) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(time) => time.timestamp(),
            Err(_) => return Ok(None),
        },
    };
    if !(0..=LATEST_TIME).contains(&seconds) {
        return Err(format!(
            "{text:?} is outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z, the times \
             keysync takes"
        ));
    }
    Ok(Some(seconds))
}

/// A UTC day named by the calendar; as a time, it is 00:00:00Z of that day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Day {
    /// `2026-11-01`
    Date(NaiveDate),
    /// `today` (0) or `yesterday` (1): days back from the day "now" falls in. Commands learn
    /// "now" (`--now`) after their flags are parsed, so the day stays relative until then.
    BeforeToday(u8),
}

impl Day {
    /// Unix seconds at 00:00:00Z of the day, seen from `now`.
    pub(crate) fn midnight(self, now: i64) -> i64 {
        match self {
            Day::Date(date) => date_midnight(date),
            Day::BeforeToday(days) => now - now.rem_euclid(DAY) - i64::from(days) * DAY,
        }
    }
}

fn date_midnight(date: NaiveDate) -> i64 {
    date.and_time(NaiveTime::MIN).and_utc().timestamp()
}

/// The one parser of the calendar's days: `YYYY-MM-DD`, `today`, `yesterday`. `None` when the
/// text is none of those forms (the caller tries its others), an error when it is shaped as a
/// date but names no day keysync takes (`2026-02-30`, `1969-12-31`).
pub(crate) fn parse_day(text: &str) -> Result<Option<Day>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("today") {
        return Ok(Some(Day::BeforeToday(0)));
    }
    if text.eq_ignore_ascii_case("yesterday") {
        return Ok(Some(Day::BeforeToday(1)));
    }
    let Some([year, month, day]) = digit_fields(text, &[4, 2, 2]) else {
        return Ok(None);
    };
    match NaiveDate::from_ymd_opt(year as i32, month, day) {
        Some(date) if year >= 1970 => Ok(Some(Day::Date(date))),
        Some(_) => Err(format!(
            "{text:?} is before 1970-01-01, the earliest day keysync takes"
        )),
        None => Err(format!(
            "{text:?} is not a day of the calendar: give a date as YYYY-MM-DD, such as \
             2026-11-01"
        )),
    }
}

/// The numbers of `text` when it is exactly fields of these many ASCII digits joined by `-`
/// (`2026-11-01` for `[4, 2, 2]`): the shape alone says "a date" or "a month", so a bad value
/// of that shape is an error about it rather than about every other syntax.
fn digit_fields<const N: usize>(text: &str, widths: &[usize; N]) -> Option<[u32; N]> {
    let mut parts = text.split('-');
    let mut numbers = [0u32; N];
    for (number, &width) in numbers.iter_mut().zip(widths) {
        let part = parts.next()?;
        if part.len() != width || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *number = part.parse().ok()?;
    }
    parts.next().is_none().then_some(numbers)
}

/// A calendar month, UTC, as `--month` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Month {
    /// `2026-11`, by its first day.
    Starting(NaiveDate),
    /// `last`: the month before the one "now" falls in, known once `--now` is.
    Last,
}

/// `--month`: `YYYY-MM` or `last`.
pub(crate) fn parse_month(text: &str) -> Result<Month, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("last") {
        return Ok(Month::Last);
    }
    digit_fields(text, &[4, 2])
        .filter(|&[year, _]| year >= 1970)
        .and_then(|[year, month]| NaiveDate::from_ymd_opt(year as i32, month, 1))
        .map(Month::Starting)
        .ok_or_else(|| {
            format!(
                "expected a month as YYYY-MM from 1970-01 on (such as 2026-11), or last (the \
                 previous calendar month, UTC), got {text:?}"
            )
        })
}

impl Month {
    /// The month as a window `(since, until]`: from 00:00:00Z of its first day to that of the
    /// next month's, or to `now` while it runs. A month that begins at or after `now` has no
    /// use to show, which is an error that says what to give instead.
    pub(crate) fn window(self, now: i64) -> Result<(i64, i64), String> {
        let first = match self {
            Month::Starting(first) => first,
            Month::Last => first_of_month(now) - Months::new(1),
        };
        let since = date_midnight(first);
        if since >= now {
            return Err(format!(
                "--month {} begins at {}, not before now ({}): give a month up to {} (the \
                 latest runs to now), or last",
                first.format("%Y-%m"),
                readable_time(since),
                readable_time(now),
                first_of_month(now - 1).format("%Y-%m"),
            ));
        }
        let next = first + Months::new(1);
        Ok((since, date_midnight(next).min(now)))
    }
}

/// The UTC month holding unix time `at`: from 00:00:00Z of its first day to that of the next
/// month's.
pub(crate) fn month_around(at: i64) -> (i64, i64) {
    let first = first_of_month(at);
    (date_midnight(first), date_midnight(first + Months::new(1)))
}

/// The first day of the UTC month holding unix time `at`.
fn first_of_month(at: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp(at, 0)
        .map_or(NaiveDate::MIN, |t| t.date_naive())
        .with_day(1)
        .expect("every month has a first day")
}

/// A point in time as a user named it on the command line; [`When::at`] resolves it once
/// "now" is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum When {
    /// `30d`: that long before now.
    Ago(Duration),
    /// Unix seconds or an RFC 3339 time.
    At(i64),
    /// `2026-11-01`, `today`, `yesterday`: 00:00:00Z of the day.
    Day(Day),
}

impl When {
    /// The unix time it names, seen from `now`.
    pub(crate) fn at(self, now: i64) -> i64 {
        match self {
            When::At(time) => time,
            When::Ago(ago) => now.saturating_sub(i64::try_from(ago.as_secs()).unwrap_or(i64::MAX)),
            When::Day(day) => day.midnight(now),
        }
    }
}

/// The forms [`parse_when`] takes, for messages.
pub(crate) const WHEN_FORMS: &str = "a duration ago (such as 30d), a date (such as \
     2025-12-19), today, yesterday, or an RFC 3339 time (such as 2025-12-19T08:00:00Z)";

/// `30d`, `2025-12-19`, `today`, `yesterday`, `2025-12-19T08:00:00Z` or unix seconds.
pub(crate) fn parse_when(text: &str) -> Result<When, String> {
    try_parse_when(text)?.ok_or_else(|| format!("expected {WHEN_FORMS}, got {:?}", text.trim()))
}

/// [`parse_when`]'s forms; `None` when the text is none of them, for a caller with forms of its
/// own. A value of one form that cannot work (`5300w`, `3y`, `2026-02-30`) is an error about it.
pub(crate) fn try_parse_when(text: &str) -> Result<Option<When>, String> {
    let text = text.trim();
    // humantime's own syntax first: a duration it reads but keysync refuses (over 100 years)
    // gets that reason, not a list of every form.
    if humantime::parse_duration(text).is_ok() {
        return parse_duration(text).map(|ago| Some(When::Ago(ago)));
    }
    if let Some(day) = parse_day(text)? {
        return Ok(Some(When::Day(day)));
    }
    Ok(parse_instant(text)?.map(When::At))
}

/// The longest duration any flag takes: 100 years. Longer ones cannot mean anything here, and
/// adding them to a clock overflows it (`--wait 500000000000y` once panicked).
pub(crate) const LONGEST_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// The units durations take, as the documentation names them. humantime reads more (`y`, `M`,
/// `min`, `ns`, ...), which would pass silently where a user meant something else (`M`
/// months for minutes) or nothing sensible (`--max-rate 3/1y`).
pub(crate) const DURATION_UNITS: [&str; 6] = ["ms", "s", "m", "h", "d", "w"];

/// The syntax of a duration, for messages.
const DURATION_FORMS: &str =
    "a whole number and a unit of ms, s, m, h, d or w, such as 500ms, 30s, 15m, 12h, 7d or 2w";

/// The one duration syntax of every command: `500ms`, `30s`, `15m`, `12h`, `7d`, `2w` (and
/// sums such as `1h30m`), at most [`LONGEST_DURATION`].
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let other_unit = trimmed
        .split(|c: char| !c.is_alphabetic())
        .find(|unit| !unit.is_empty() && !DURATION_UNITS.contains(unit));
    if let Some(unit) = other_unit.filter(|_| trimmed.starts_with(|c: char| c.is_ascii_digit())) {
        return Err(format!(
            "{text:?} has the unit {unit:?}, which keysync does not take: give {DURATION_FORMS}"
        ));
    }
    let duration = humantime::parse_duration(trimmed)
        .map_err(|_| format!("expected {DURATION_FORMS}, got {text:?}"))?;
    if duration > LONGEST_DURATION {
        return Err(format!(
            "{text:?} is longer than 100 years, the longest duration keysync takes"
        ));
    }
    Ok(duration)
}

/// A duration that must be longer than zero: a timeout, an interval, a window, a retention.
pub(crate) fn parse_positive_duration(text: &str) -> Result<Duration, String> {
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
pub(crate) fn readable_time(unix: i64) -> String {
    if unix == -1 {
        return "never".to_string();
    }
    // Formatted field by field: strftime parses its pattern on every call, and a history or
    // diff table formats thousands of times.
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| {
            use chrono::Timelike;
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

/// When a sync started, seen from now: `3m 5s ago`, or `35d 4h in the future` for one a clock
/// that was ahead recorded (or one after `--now`): never a made-up `0s ago`.
pub(crate) fn readable_when(age: i64) -> String {
    if age < 0 {
        format!("{} in the future", readable_age(age.saturating_neg()))
    } else {
        format!("{} ago", readable_age(age))
    }
}

/// An age read at a glance, in its two largest units: `45s`, `3m 5s`, `2h 10m`, `35d 4h`.
pub(crate) fn readable_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A duration in the units keysync takes (`2w`, `1h30m`, `500ms`), so that a value a message
/// shows can be given back as a flag. Below a millisecond is left out.
pub(crate) fn readable_duration(duration: Duration) -> String {
    const UNITS: [(&str, u128); 6] = [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut left = duration.as_millis();
    if left == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (unit, size) in UNITS {
        if left >= size {
            text += &format!("{}{unit}", left / size);
            left %= size;
        }
    }
    text
}

/// A unix time as RFC 3339 with a `T`, `2025-12-19T08:00:00Z`: the form of times in JSON that
/// monitoring tools parse.
pub(crate) fn rfc3339_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// [`rfc3339_time`] as a serde serializer, for the times of the JSON that `pull --json` prints.
pub(crate) fn as_rfc3339<S: serde::Serializer>(
    unix: &i64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339_time(*unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_is_written_in_the_units_keysync_takes_back() {
        let cases = [
            (Duration::from_secs(14 * 86_400), "2w"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(90_061_001), "1d1h1m1s1ms"),
            (Duration::ZERO, "0s"),
            (LONGEST_DURATION, "5217w6d"),
        ];
        for (duration, text) in cases {
            assert_eq!(readable_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "{text}");
        }
    }

    #[test]
    fn a_time_in_the_future_is_said_to_be() {
        assert_eq!(readable_when(185), "3m 5s ago");
        assert_eq!(readable_when(0), "0s ago");
        assert_eq!(readable_when(-45), "45s in the future");
        assert_eq!(
            readable_when(-(35 * 86_400 + 4 * 3600)),
            "35d 4h in the future"
        );
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(readable_age(45), "45s");
        assert_eq!(readable_age(185), "3m 5s");
        assert_eq!(readable_age(7_800), "2h 10m");
        assert_eq!(readable_age(35 * 86_400 + 4 * 3600 + 59), "35d 4h");
    }

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
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("36525d"), Ok(LONGEST_DURATION));
        assert!(
            parse_duration("36526d")
                .unwrap_err()
                .contains("longer than 100 years")
        );
        assert!(parse_duration("500000000000w").is_err());
        // humantime's other units are refused, naming the ones keysync takes.
        for (text, unit) in [
            ("1y", "y"),
            ("2M", "M"),
            ("3year", "year"),
            ("5min", "min"),
            ("1ns", "ns"),
            ("1h 2sec", "sec"),
            ("4µs", "µs"),
        ] {
            assert_eq!(
                parse_duration(text).unwrap_err(),
                format!(
                    "{text:?} has the unit {unit:?}, which keysync does not take: give a whole \
                     number and a unit of ms, s, m, h, d or w, such as 500ms, 30s, 15m, 12h, 7d \
                     or 2w"
                )
            );
        }
        assert_eq!(
            parse_duration("7").unwrap_err(),
            "expected a whole number and a unit of ms, s, m, h, d or w, such as 500ms, 30s, \
             15m, 12h, 7d or 2w, got \"7\""
        );
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
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("9999-12-31T23:59:59Z"), Ok(LATEST_TIME));
        assert!(parse_time("-1").unwrap_err().contains("is outside 1970"));
        assert!(parse_time("9223372036854775807").is_err());
        assert_eq!(
            parse_time("soon").unwrap_err(),
            "expected unix seconds, an RFC 3339 time such as 2025-12-19T08:00:00Z, a date such \
             as 2025-12-19, today or yesterday, got \"soon\""
        );
    }

    const DEC_19: i64 = 1_766_102_400;

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    #[test]
    fn now_takes_dates_and_reads_today_from_the_clock() {
        assert_eq!(parse_time("2025-12-19"), Ok(DEC_19));
        assert_eq!(parse_time("1970-01-01"), Ok(0));
        assert_eq!(parse_time("9999-12-31"), Ok(LATEST_TIME - DAY + 1));
        let today = parse_time("today").unwrap();
        let clock = unix_now(None);
        assert_eq!(today % DAY, 0);
        assert!((clock - DAY..=clock).contains(&today), "{today} {clock}");
        assert_eq!(parse_time("yesterday"), Ok(today - DAY));
    }

    #[test]
    fn days_are_dates_today_and_yesterday() {
        assert_eq!(
            parse_day("2025-12-19"),
            Ok(Some(Day::Date(date(2025, 12, 19))))
        );
        assert_eq!(parse_day(" today "), Ok(Some(Day::BeforeToday(0))));
        assert_eq!(parse_day("Yesterday"), Ok(Some(Day::BeforeToday(1))));
        assert_eq!(
            parse_day("2024-02-29"),
            Ok(Some(Day::Date(date(2024, 2, 29))))
        );
        // Not the shape of a date: another syntax's business.
        for other in [
            "30d",
            "2025-12-19T00:00:00Z",
            "2025-1-19",
            "20251219",
            "+2025-12-19",
            "",
        ] {
            assert_eq!(parse_day(other), Ok(None), "{other:?}");
        }
        assert_eq!(
            parse_day("2025-02-29").unwrap_err(),
            "\"2025-02-29\" is not a day of the calendar: give a date as YYYY-MM-DD, such as \
             2026-11-01"
        );
        assert!(parse_day("2025-13-01").unwrap_err().contains("not a day"));
        assert!(parse_day("2025-12-00").unwrap_err().contains("not a day"));
        assert_eq!(
            parse_day("1969-12-31").unwrap_err(),
            "\"1969-12-31\" is before 1970-01-01, the earliest day keysync takes"
        );
    }

    #[test]
    fn days_resolve_to_midnight_utc_seen_from_now() {
        let evening = DEC_19 + 20 * 3600 + 59;
        assert_eq!(Day::BeforeToday(0).midnight(evening), DEC_19);
        assert_eq!(Day::BeforeToday(1).midnight(evening), DEC_19 - DAY);
        assert_eq!(Day::BeforeToday(0).midnight(DEC_19), DEC_19);
        assert_eq!(Day::BeforeToday(1).midnight(DEC_19), DEC_19 - DAY);
        // A date is the same whatever now is.
        assert_eq!(Day::Date(date(2025, 12, 19)).midnight(0), DEC_19);
    }

    #[test]
    fn whens_are_durations_ago_days_or_times() {
        assert_eq!(
            parse_when("30d"),
            Ok(When::Ago(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(parse_when("2025-12-19T00:00:00Z"), Ok(When::At(DEC_19)));
        assert_eq!(parse_when("1766102400"), Ok(When::At(DEC_19)));
        assert_eq!(
            parse_when("2025-12-19"),
            Ok(When::Day(Day::Date(date(2025, 12, 19))))
        );
        assert_eq!(parse_when("today"), Ok(When::Day(Day::BeforeToday(0))));
        assert_eq!(When::Ago(Duration::from_secs(60)).at(1000), 940);
        assert_eq!(When::Day(Day::BeforeToday(1)).at(DEC_19 + 5), DEC_19 - DAY);
        assert_eq!(When::At(7).at(DEC_19), 7);
        assert_eq!(
            parse_when("last week").unwrap_err(),
            "expected a duration ago (such as 30d), a date (such as 2025-12-19), today, \
             yesterday, or an RFC 3339 time (such as 2025-12-19T08:00:00Z), got \"last week\""
        );
        // A value of one form that cannot work says why, not which forms exist.
        assert!(parse_when("2025-02-30").unwrap_err().contains("not a day"));
        assert!(
            parse_when("5300w")
                .unwrap_err()
                .contains("longer than 100 years")
        );
        assert!(parse_when("-1").unwrap_err().contains("is outside 1970"));
        assert!(parse_when("3y").unwrap_err().contains("has the unit \"y\""));
        assert_eq!(try_parse_when("soon"), Ok(None));
    }

    #[test]
    fn months_are_yyyy_mm_or_last() {
        assert_eq!(
            parse_month("2026-11"),
            Ok(Month::Starting(date(2026, 11, 1)))
        );
        assert_eq!(
            parse_month("1970-01"),
            Ok(Month::Starting(date(1970, 1, 1)))
        );
        assert_eq!(parse_month(" LAST "), Ok(Month::Last));
        let expected = "expected a month as YYYY-MM from 1970-01 on (such as 2026-11), or \
                        last (the previous calendar month, UTC), got";
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "2026-11-01",
            "1969-12",
            "last-ish",
            "",
        ] {
            let error = parse_month(bad).unwrap_err();
            assert_eq!(error, format!("{expected} {bad:?}"));
        }
    }

    #[test]
    fn a_month_runs_from_its_first_day_to_the_next_months_or_to_now() {
        // 2026-12-07 10:00:00Z.
        let now = 1_796_637_600;
        let nov_1 = 1_793_491_200;
        let dec_1 = 1_796_083_200;
        let jan_1 = 1_798_761_600;
        assert_eq!(
            Month::Starting(date(2026, 11, 1)).window(now),
            Ok((nov_1, dec_1))
        );
        assert_eq!(Month::Last.window(now), Ok((nov_1, dec_1)));
        assert_eq!(
            Month::Starting(date(2026, 12, 1)).window(now),
            Ok((dec_1, now))
        );
        // December ends on the next year's first day.
        assert_eq!(
            Month::Starting(date(2026, 12, 1)).window(jan_1 + 1),
            Ok((dec_1, jan_1))
        );
        // At 00:00:00Z of a month's first day, `last` is the month that just ended.
        assert_eq!(Month::Last.window(dec_1), Ok((nov_1, dec_1)));
        assert_eq!(
            Month::Starting(date(2027, 1, 1)).window(now).unwrap_err(),
            "--month 2027-01 begins at 2027-01-01 00:00:00Z, not before now (2026-12-07 \
             10:00:00Z): give a month up to 2026-12 (the latest runs to now), or last"
        );
        // A month that begins exactly now has nothing in it yet.
        assert!(
            Month::Starting(date(2026, 12, 1))
                .window(dec_1)
                .unwrap_err()
                .contains("give a month up to 2026-11")
        );
    }

    #[test]
    fn json_times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339_time(1_766_102_400), "2025-12-19T00:00:00Z");
        assert_eq!(rfc3339_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time(&rfc3339_time(1_766_131_201)), Ok(1_766_131_201));
    }
}
