//! Time as Berth writes it for people and protocols: RFC 3339 in UTC,
//! computed without a time zone database.

/// RFC 3339 UTC for a unix time (days-from-civil, no time zone database).
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_651_200), "2026-11-26T00:00:00Z");
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The week (from Monday 00:00 UTC) holding `unix`: its start and end.
pub fn week_of(unix: i64) -> (i64, i64) {
    let days = unix.div_euclid(86_400);
    // 1970-01-01 was a Thursday: Monday is 3 days before.
    let monday = days - (days + 3).rem_euclid(7);
    (monday * 86_400, (monday + 7) * 86_400)
}

/// The month (UTC) holding `unix`: its start and end.
pub fn month_of(unix: i64) -> (i64, i64) {
    let text = rfc3339(unix);
    let y: i64 = text[..4].parse().unwrap_or(1970);
    let m: i64 = text[5..7].parse().unwrap_or(1);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        days_from_civil(y, m, 1) * 86_400,
        days_from_civil(ny, nm, 1) * 86_400,
    )
}

#[cfg(test)]
mod periods {
    use super::*;

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-12-03 is a Thursday.
        let t = 1_796_270_400; // 2026-12-03T04:00:00Z
        let (start, end) = week_of(t);
        assert_eq!(rfc3339(start), "2026-11-30T00:00:00Z");
        assert_eq!(rfc3339(end), "2026-12-07T00:00:00Z");
        let (start, end) = month_of(t);
        assert_eq!(rfc3339(start), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(end), "2027-01-01T00:00:00Z");
        assert_eq!(rfc3339(month_of(951_782_400).1), "2000-03-01T00:00:00Z");
    }
}
