//! `--since WHEN`: a time back from now (`90s`, `10m`, `2h`, `1d`) or a UTC time
//! (`2026-11-30T10:00:00`, `2026-11-30 10:00:00Z`, `2026-11-30`), as Unix seconds.

/// Parses WHEN against `now` (Unix seconds).
pub fn parse_since(text: &str, now: u64) -> Result<u64, String> {
    let t = text.trim();
    let unit = t.chars().last().unwrap_or(' ');
    let seconds = match unit {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    if let Some(per) = seconds
        && let Ok(n) = t[..t.len() - 1].parse::<u64>()
    {
        return Ok(now.saturating_sub(n.saturating_mul(per)));
    }
    utc_time(t).ok_or_else(|| {
        format!(
            "--since {text:?}: give a time back from now (90s, 10m, 2h, 1d) or a UTC time \
             (2026-11-30T10:00:00)"
        )
    })
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS]][Z]` in UTC, as Unix seconds.
fn utc_time(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z').unwrap_or(t);
    let (date, time) = match t.split_once(['T', ' ']) {
        Some((d, tm)) => (d, tm),
        None => (t, "00:00:00"),
    };
    let num = |s: &str, len: usize| (s.len() == len).then(|| s.parse::<i64>().ok()).flatten();
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let mut c = time.split(':');
    let (h, min) = (num(c.next()?, 2)?, num(c.next()?, 2)?);
    let s = match c.next() {
        Some(s) => num(s, 2)?,
        None => 0,
    };
    if d.next().is_some() || c.next().is_some() {
        return None;
    }
    let ok = (1..=12).contains(&m) && (1..=31).contains(&day) && h < 24 && min < 60 && s < 61;
    if !ok || y < 1970 {
        return None;
    }
    // A civil date to days (Howard Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + min * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn durations_and_utc_times() {
        let now = 1_764_500_000;
        assert_eq!(parse_since("90s", now), Ok(now - 90));
        assert_eq!(parse_since("10m", now), Ok(now - 600));
        assert_eq!(parse_since("2h", now), Ok(now - 7200));
        assert_eq!(parse_since("1d", now), Ok(now - 86_400));
        assert_eq!(parse_since("1970-01-02", now), Ok(86_400));
        assert_eq!(parse_since("2026-11-30T10:00:00Z", now), Ok(1_796_032_800));
        assert_eq!(parse_since("2026-11-30 10:00", now), Ok(1_796_032_800));
        assert_eq!(parse_since("2024-02-29T00:00:01", now), Ok(1_709_164_801));
        for bad in [
            "",
            "10",
            "10x",
            "-5m",
            "2026-13-01",
            "2026-11-30T25:00",
            "yesterday",
        ] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
