//! Time values in the config: GEP-2257 durations and RFC 3339 creation timestamps.

/// Parses a GEP-2257 duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut total: u64 = 0;
    let mut components = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - digits_start;
        if digits == 0 || digits > 5 {
            return Err(format!(
                "{text:?} is not a GEP-2257 duration: each component needs 1 to 5 digits then h, m, s or ms"
            ));
        }
        let number: u64 = text
            .get(digits_start..i)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("{text:?} is not a GEP-2257 duration"))?;
        let unit_ms = match (bytes.get(i), bytes.get(i + 1)) {
            (Some(b'm'), Some(b's')) => {
                i += 2;
                1
            }
            (Some(b'h'), _) => {
                i += 1;
                3_600_000
            }
            (Some(b'm'), _) => {
                i += 1;
                60_000
            }
            (Some(b's'), _) => {
                i += 1;
                1_000
            }
            _ => {
                return Err(format!(
                    "{text:?} is not a GEP-2257 duration: units are h, m, s and ms (no spaces, signs or fractions)"
                ));
            }
        };
        components += 1;
        if components > 4 {
            return Err(format!("{text:?} has more than 4 components"));
        }
        total += number * unit_ms;
    }
    Ok(total)
}

/// A creation timestamp reduced to something totally ordered: (seconds since the Unix epoch, nanos).
pub type Timestamp = (i64, u32);

/// Parses RFC 3339 (`2024-05-01T10:00:00Z`, fractions and `+hh:mm` offsets allowed).
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    let err = || format!("{text:?} is not an RFC 3339 timestamp like 2024-05-01T10:00:00Z");
    let b = text.as_bytes();
    // Fields are at most four digits, so the value cannot overflow. Read here rather than through
    // `str::parse`, and without building the error until one is found: this runs twice per route
    // on every push (validation, then compilation).
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range).filter(|p| !p.is_empty())?;
        let mut value = 0i64;
        for &c in part {
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(c - b'0');
        }
        Some(value)
    };
    let num = |range: std::ops::Range<usize>| digits(range).ok_or_else(err);
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return Err(err());
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return Err(err());
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return Err(err());
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(err());
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = text.get(start..i).ok_or_else(err)?;
        if frac.is_empty() {
            return Err(err());
        }
        // Nanoseconds: the first nine digits, scaled up when fewer are written.
        let digits = frac.as_bytes();
        for place in 0..9 {
            nanos = nanos * 10
                + digits
                    .get(place)
                    .map_or(0, |d| u32::from(d.saturating_sub(b'0')));
        }
    }
    let offset_seconds = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let hours = num(i + 1..i + 3)?;
            let minutes = num(i + 4..i + 6)?;
            if hours > 23 || minutes > 59 {
                return Err(err());
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return Err(err()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Ok((seconds, nanos))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_gep_2257() {
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1h1m1s1ms"), Ok(3_661_001));
        assert_eq!(parse_duration_ms("99999h"), Ok(99_999 * 3_600_000));
        for bad in [
            "",
            "1",
            "1.5s",
            "-1s",
            "1d",
            "123456s",
            "1h1m1s1ms1h",
            "1 s",
            "ms",
            "1us",
        ] {
            assert!(
                parse_duration_ms(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn timestamps_order_correctly_across_offsets_and_fractions() {
        for (text, expected) in [
            ("1970-01-01T00:00:00Z", (0, 0)),
            ("2024-03-01T00:00:00Z", (1_709_251_200, 0)),
            ("2024-03-01T01:00:00+01:00", (1_709_251_200, 0)),
            ("2024-03-01T00:00:00.5Z", (1_709_251_200, 500_000_000)),
            ("2024-03-01T00:00:00.000000001Z", (1_709_251_200, 1)),
            // Beyond nanoseconds, digits are dropped, not rounded.
            (
                "2024-03-01T00:00:00.1234567899-00:30",
                (1_709_253_000, 123_456_789),
            ),
        ] {
            assert_eq!(parse_rfc3339(text), Ok(expected), "{text:?}");
        }
        assert!(parse_rfc3339("2024-03-01T00:00:00.25Z") < parse_rfc3339("2024-03-01T00:00:00.5Z"));
        for bad in [
            "2024-03-01",
            "2024-13-01T00:00:00Z",
            "2024-03-01T00:00:00",
            "x024-03-01T00:00:00Z",
            "2024-03-01T00:00:00.Z",
            "2024-03-01T0a:00:00Z",
            "2024-03-01T00:00:00+1:000",
            "2024-03-01T00:00:00+01:6a",
            "２024-03-01T00:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
