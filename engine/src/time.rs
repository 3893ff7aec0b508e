//! RFC 3339 timestamps <-> Unix milliseconds, without a calendar crate.
//!
//! The engine never reads a clock: callers pass `now` in Unix milliseconds
//! (the filter from the host, the CLI from the system or `--now`).

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |acc, b| {
        acc.checked_mul(10)?.checked_add(i64::from(b - b'0'))
    })
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let sep = |i: usize, c: u8| b.get(i).is_some_and(|x| *x == c);
    if b.len() < 20 || !sep(4, b'-') || !sep(7, b'-') || !sep(13, b':') || !sep(16, b':') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let y = digits(b.get(0..4)?)?;
    let mo = digits(b.get(5..7)?)?;
    let d = digits(b.get(8..10)?)?;
    let h = digits(b.get(11..13)?)?;
    let mi = digits(b.get(14..16)?)?;
    let sec = digits(b.get(17..19)?)?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if sep(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = b.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        for (n, c) in frac.iter().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1].get(n).copied().unwrap_or(0);
        }
    }
    let offset_min = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = digits(&[*oh1, *oh2])?;
            let om = digits(&[*om1, *om2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 60 + om;
            if *sign == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    secs.checked_mul(1000)?.checked_add(millis)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
/// A span such as `30s`, `5m`, `1h` or `2d`, in seconds (positive; `None` otherwise).
pub fn parse_span_secs(span: &str) -> Option<i64> {
    let span = span.trim();
    let (n, unit) = span.split_at(span.len().checked_sub(1)?);
    let unit: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(unit))
}

pub fn format_rfc3339_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2027-06-30T00:00:00Z", Some(1_814_313_600_000)),
            ("2026-11-24T18:00:00.123Z", Some(1_795_543_200_123)),
            ("2026-11-24T19:00:00.123456+01:00", Some(1_795_543_200_123)),
            ("2026-11-24T17:30:00-00:30", Some(1_795_543_200_000)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2023-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-24T24:00:00Z", None),
            ("2026-11-24T18:00:00", None),
            ("2026-11-24T18:00:00.Z", None),
            ("2026-11-24", None),
            ("2026-11-24T18:00:00Zjunk", None),
            ("２026-11-24T18:00:00Z", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_rfc3339(input), *want, "{input}");
        }
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_millis(1_795_543_200_123),
            "2026-11-24T18:00:00.123Z"
        );
        for ms in [0, 951_782_400_000, 1_709_164_800_999, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339(&format_rfc3339_millis(ms)), Some(ms));
        }
    }
}
