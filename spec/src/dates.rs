//! Dates a student writes in `workspace.yaml` (`keep_until`, access
//! `until`): a UTC instant `2026-12-10T18:00:00Z` or a day `2026-12-10`,
//! which lasts to the end of that day (UTC). Times with another offset are
//! refused rather than guessed.

/// Unix seconds at which `text` ends.
pub fn until(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let wrong = || {
        format!(
            "`{}` is not a date: write `2026-12-10` (to the end of that day, UTC) or `2026-12-10T18:00:00Z`",
            crate::names::shorten(t)
        )
    };
    if t.len() == 10 {
        let day: jiff::civil::Date = t.parse().map_err(|_| wrong())?;
        let next = day.tomorrow().map_err(|_| wrong())?;
        return next
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .map_err(|_| wrong());
    }
    if !t.ends_with('Z') {
        return Err(wrong());
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_second())
        .map_err(|_| wrong())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_lasts_to_its_end_and_an_instant_is_exact() {
        // 2026-12-11T00:00:00Z
        assert_eq!(until("2026-12-10"), Ok(1_796_947_200));
        assert_eq!(until("2026-12-10T18:00:00Z"), Ok(1_796_925_600));
        assert_eq!(until("2026-12-31"), Ok(1_798_761_600));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "tomorrow",
            "2026-13-01",
            "2026-02-30",
            "2026-12-10T18:00:00",
            "2026-12-10T18:00:00+02:00",
            "10/12/2026",
        ] {
            assert!(until(bad).is_err(), "{bad}");
        }
    }
}
