//! The legacy time syntax of `from`/`until` ("attime").
//!
//! Underscores, commas and spaces are removed first. All digits: exactly 8
//! digits forming a valid date is `YYYYMMDD` (UTC midnight); otherwise Unix
//! time whose unit follows the digit count (13 ms, 16 µs, 19 ns, anything else
//! seconds). Otherwise `now`, or `<anything><+|-><number><unit>` relative to
//! now, where the unit word is matched by prefix: `s`, `mon`/`M` (30 days),
//! `min`/`m`, `h`, `d`, `w`, `y` (365 days). As in Pyroscope, everything after
//! the number is the unit word, so `now-3h30m` means three hours.

use crate::ModelError;

const NS_PER_SEC: i64 = 1_000_000_000;

/// Parses `input` into nanoseconds since the Unix epoch; `now_ns` is "now".
pub fn parse_attime(input: &str, now_ns: i64) -> Result<i64, ModelError> {
    let s: String = input
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if s.is_empty() {
        return Err(ModelError::InvalidTime(input.to_owned()));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        if s.len() == 8
            && let Some(ns) = yyyymmdd(&s)
        {
            return Ok(ns);
        }
        let v: i64 = s
            .parse()
            .map_err(|_| ModelError::InvalidTime(input.to_owned()))?;
        return Ok(match s.len() {
            13 => v.saturating_mul(1_000_000),
            16 => v.saturating_mul(1_000),
            19 => v,
            _ => v.saturating_mul(NS_PER_SEC),
        });
    }
    if s == "now" {
        return Ok(now_ns);
    }
    let Some(sign_pos) = s.find(['+', '-']) else {
        return Err(ModelError::InvalidTime(input.to_owned()));
    };
    let sign = if s.as_bytes()[sign_pos] == b'-' {
        -1
    } else {
        1
    };
    let rest = &s[sign_pos + 1..];
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits_end == 0 {
        return Err(ModelError::InvalidTime(input.to_owned()));
    }
    let n: i64 = rest[..digits_end]
        .parse()
        .map_err(|_| ModelError::InvalidTime(input.to_owned()))?;
    let unit = &rest[digits_end..];
    let seconds = if unit.starts_with("mon") || unit.starts_with('M') {
        30 * 86_400
    } else if unit.starts_with("min") || unit.starts_with('m') {
        60
    } else if unit.starts_with('s') {
        1
    } else if unit.starts_with('h') {
        3_600
    } else if unit.starts_with('d') {
        86_400
    } else if unit.starts_with('w') {
        7 * 86_400
    } else if unit.starts_with('y') {
        365 * 86_400
    } else {
        0
    };
    Ok(now_ns.saturating_add(sign * n.saturating_mul(seconds).saturating_mul(NS_PER_SEC)))
}

fn yyyymmdd(s: &str) -> Option<i64> {
    let y: i64 = s[0..4].parse().ok()?;
    let m: i64 = s[4..6].parse().ok()?;
    let d: i64 = s[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    // Dates after 2262 do not fit i64 nanoseconds: not a date, then.
    days_from_civil(y, m, d)
        .checked_mul(86_400)?
        .checked_mul(NS_PER_SEC)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000 * NS_PER_SEC;

    #[test]
    fn parses_every_documented_form() {
        let p = |s| parse_attime(s, NOW).unwrap();
        assert_eq!(p("now"), NOW);
        assert_eq!(p("now-1h"), NOW - 3_600 * NS_PER_SEC);
        assert_eq!(p("now-30m"), NOW - 1_800 * NS_PER_SEC);
        assert_eq!(p("now-30min"), NOW - 1_800 * NS_PER_SEC);
        assert_eq!(p("now-7d"), NOW - 7 * 86_400 * NS_PER_SEC);
        assert_eq!(p("now-1M"), NOW - 30 * 86_400 * NS_PER_SEC);
        assert_eq!(p("now-3h30m"), NOW - 3 * 3_600 * NS_PER_SEC);
        assert_eq!(p("now+10s"), NOW + 10 * NS_PER_SEC);
        assert_eq!(p("1700000000"), 1_700_000_000 * NS_PER_SEC);
        assert_eq!(p("1700000000123"), 1_700_000_000_123_000_000);
        assert_eq!(p("1700000000123456"), 1_700_000_000_123_456_000);
        assert_eq!(p("1700000000123456789"), 1_700_000_000_123_456_789);
        assert_eq!(p("1_700_000_000"), 1_700_000_000 * NS_PER_SEC);
        assert_eq!(p("20231114"), 1_699_920_000 * NS_PER_SEC);
        // 8 digits that are not a date are seconds
        assert_eq!(p("99999999"), 99_999_999 * NS_PER_SEC);
        assert_eq!(p("now-5x"), NOW);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_attime("", NOW).is_err());
        assert!(parse_attime("yesterday", NOW).is_err());
        assert!(parse_attime("now-", NOW).is_err());
        assert!(parse_attime("99999999999999999999999", NOW).is_err());
    }

    #[test]
    fn dates_past_2262_are_not_dates() {
        // Found by the ingest_params fuzz target: `34000501` overflowed i64
        // nanoseconds as a date (a panic in debug builds); it is Unix
        // seconds instead, as any other digit string.
        assert_eq!(
            parse_attime("34000501", NOW).unwrap(),
            34_000_501 * NS_PER_SEC
        );
        assert_eq!(
            parse_attime("34__000501", NOW).unwrap(),
            34_000_501 * NS_PER_SEC
        );
        assert_eq!(
            parse_attime("22620411", NOW).unwrap(),
            days_from_civil(2262, 4, 11) * 86_400 * NS_PER_SEC
        );
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
