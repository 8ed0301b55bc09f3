//! Wall-clock time in the forms the gateway writes it: nanoseconds since
//! the epoch (push times), RFC 3339 (logs, JSON), and HTTP dates. One
//! calendar conversion serves them all.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, as push times are kept.
pub(crate) type Nanos = i64;

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_nanos() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as Nanos)
        .unwrap_or(0)
}

/// `2026-11-25T03:44:31.767Z` for a wall-clock time.
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let Civil {
        y,
        m,
        d: day,
        h,
        min,
        s,
    } = Civil::at(d.as_secs() as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{h:02}:{min:02}:{s:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// A UTC calendar date and time of day, to the second.
struct Civil {
    y: i64,
    m: u32,
    d: u32,
    h: i64,
    min: i64,
    s: i64,
}

impl Civil {
    fn at(secs: i64) -> Civil {
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        Civil {
            y,
            m,
            d,
            h: rem / 3600,
            min: rem % 3600 / 60,
            s: rem % 60,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `time.RFC3339Nano` in UTC: `2026-11-25T04:18:07.542346203Z`, with
/// trailing zeros of the fraction dropped (and the dot when it is zero).
pub(crate) fn rfc3339_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let Civil { y, m, d, h, min, s } = Civil::at(secs);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}");
    if frac > 0 {
        let f = format!(".{frac:09}");
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// promu's build-date format, `20060102-15:04:05`, in UTC. `build.rs`
/// includes this file to stamp the build date with it.
#[allow(dead_code)] // only build.rs and the tests call it
pub(crate) fn promu_date(secs: i64) -> String {
    let Civil { y, m, d, h, min, s } = Civil::at(secs);
    format!("{y:04}{m:02}{d:02}-{h:02}:{min:02}:{s:02}")
}

/// Go's `time.Duration.String()`: `1m30s`, `5m0s`, `1h0m0s`, `250ms`,
/// `0s`, as the reference shows flag values.
pub(crate) fn go_duration(d: std::time::Duration) -> String {
    let ns = d.as_nanos();
    let frac = |n: u128, digits: u32| {
        let unit = 10u128.pow(digits);
        let f = format!("{:0width$}", n % unit, width = digits as usize);
        match f.trim_end_matches('0') {
            "" => format!("{}", n / unit),
            f => format!("{}.{f}", n / unit),
        }
    };
    match ns {
        0 => "0s".to_owned(),
        1..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{}µs", frac(ns, 3)),
        1_000_000..=999_999_999 => format!("{}ms", frac(ns, 6)),
        _ => {
            let secs = ns / 1_000_000_000;
            let s = frac(ns % 60_000_000_000, 9);
            let (h, m) = (secs / 3600, secs / 60 % 60);
            match (h, m) {
                (0, 0) => format!("{s}s"),
                (0, m) => format!("{m}m{s}s"),
                (h, m) => format!("{h}h{m}m{s}s"),
            }
        }
    }
}

/// `Mon, 30 Nov 2026 03:28:48 GMT` (RFC 9110 IMF-fixdate).
pub(crate) fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let Civil { y, m, d, h, min, s } = Civil::at(secs);
    format!(
        "{}, {d:02} {} {y:04} {h:02}:{min:02}:{s:02} GMT",
        DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        use std::time::Duration;
        for (d, want) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_secs(90_061), "25h1m1s"),
        ] {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn promu_date_is_promus_layout() {
        assert_eq!(promu_date(0), "19700101-00:00:00");
        assert_eq!(promu_date(1_796_009_328), "20261130-03:28:48");
    }
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_578_271_767);
        assert_eq!(rfc3339_millis(t), "2026-11-25T03:44:31.767Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339_millis(leap)[..10], "2000-02-29");
    }

    #[test]
    fn nano_times() {
        assert_eq!(
            rfc3339_nanos(1_795_580_287_542_346_203),
            "2026-11-25T04:18:07.542346203Z"
        );
        assert_eq!(
            rfc3339_nanos(1_795_580_287_500_000_000),
            "2026-11-25T04:18:07.5Z"
        );
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_009_728);
        assert_eq!(http_date(t), "Mon, 30 Nov 2026 03:35:28 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
