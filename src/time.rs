//! Time and duration parsing and formatting for the command line and reports.
//!
//! Every instant is a [`Micros`]: microseconds since the Unix epoch, UTC.
//!
//! Accepted TIME forms (README, "Times"):
//! - RFC 3339: `2026-11-20T10:00:03Z`, `2026-11-20T11:00:03+01:00`, optional fractional
//!   seconds (`.` or `,`), lowercase `t`/`z`, a space instead of `T`; `+0100` (no colon) is
//!   also accepted.
//! - `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS` without an offset (optional fraction,
//!   seconds may be omitted), read as wall-clock time in the given [`Zone`].
//! - `YYYY-MM-DD`: midnight in the given zone (extension).
//! - `@EPOCH` or `@EPOCH.fraction`: seconds since the Unix epoch; negative values are rejected.
//! - `now` (extension).
//!
//! Wall-clock times that a DST change makes ambiguous (clocks set back: the time happened
//! twice) or nonexistent (clocks set forward: skipped) are errors naming both candidate
//! offsets, never a silent guess: for a forensic answer an hour off is a wrong answer.
//! Leap seconds (`:60`) are rejected since pf timestamps are Unix time and never carry them.
//! Years are limited to 0000..=9999 (RFC 3339's range); `@EPOCH` to 1970..=9999.
//! Fractions finer than a microsecond are truncated.

use std::fmt::Display;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, FixedOffset, Local, LocalResult, NaiveDate, NaiveDateTime, Offset,
    TimeZone, Timelike, Utc,
};
use jiff::tz::AmbiguousOffset;

use crate::model::Micros;

const US_PER_SEC: i64 = 1_000_000;
/// 0000-01-01T00:00:00Z in seconds.
const MIN_SECS: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z in seconds.
const MAX_SECS: i64 = 253_402_300_799;

const TIME_HINT: &str =
    r#"expected RFC 3339 (2026-11-20T10:00:03Z), "YYYY-MM-DD HH:MM:SS" or @EPOCH"#;
const DURATION_HINT: &str =
    "expected a number of seconds or units like 90s, 2m, 1h, 1d, 500ms, 1h30m";

/// A bad TIME, DUR or zone value; the message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("invalid time {input:?}: {reason}")]
    Time { input: String, reason: String },
    #[error("invalid duration {input:?}: {reason}")]
    Duration { input: String, reason: String },
    #[error(
        "unknown time zone {input:?}: expected \"UTC\", \"local\" or an IANA name such as \"Europe/Paris\""
    )]
    Zone { input: String },
}

fn time_err(input: &str, reason: impl Into<String>) -> TimeError {
    TimeError::Time {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// A syntax or range error: append the list of accepted forms.
fn time_syntax(input: &str, reason: &str) -> TimeError {
    time_err(input, format!("{reason}; {TIME_HINT}"))
}

fn dur_err(input: &str, reason: impl Into<String>) -> TimeError {
    TimeError::Duration {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// The zone that offset-less times are read in and that [`format_in`] prints in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    Utc,
    /// chrono's `Local`: the `TZ` environment variable, else the system zone
    /// (`/etc/localtime`), else UTC.
    #[default]
    Local,
    Named(NamedZone),
}

/// An IANA zone from jiff's bundled copy of the tz database (no system files, so the same
/// in a chroot). Held by `&'static` so that [`Zone`] stays `Copy`: each name is looked up
/// and kept once per process.
#[derive(Clone, Copy)]
pub struct NamedZone {
    name: &'static str,
    tz: &'static jiff::tz::TimeZone,
}

impl NamedZone {
    /// `name` exactly as the tz database spells it (case-sensitive, as chrono-tz was).
    fn get(name: &str) -> Option<NamedZone> {
        static SEEN: std::sync::Mutex<Vec<NamedZone>> = std::sync::Mutex::new(Vec::new());
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(z) = seen.iter().find(|z| z.name == name) {
            return Some(*z);
        }
        let tz = jiff::tz::TimeZone::get(name).ok()?;
        if tz.iana_name() != Some(name) {
            return None;
        }
        let z = NamedZone {
            name: Box::leak(name.to_string().into_boxed_str()),
            tz: Box::leak(Box::new(tz)),
        };
        seen.push(z);
        Some(z)
    }

    /// The zone's offset from UTC at `secs` (Unix seconds).
    fn offset_at(&self, secs: i64) -> Option<FixedOffset> {
        let ts = jiff::Timestamp::from_second(secs).ok()?;
        FixedOffset::east_opt(self.tz.to_offset(ts).seconds())
    }

    /// Wall-clock `ndt` in this zone to Unix seconds, refusing DST ambiguity.
    fn resolve(&self, ndt: NaiveDateTime) -> Result<i64, Dst> {
        const FMT: &str = "%Y-%m-%dT%H:%M:%S%:z";
        let civil = jiff::civil::DateTime::new(
            i16::try_from(ndt.year()).map_err(|_| Dst::Gap)?,
            ndt.month() as i8,
            ndt.day() as i8,
            ndt.hour() as i8,
            ndt.minute() as i8,
            ndt.second() as i8,
            0,
        )
        .map_err(|_| Dst::Gap)?;
        let at = |o: jiff::tz::Offset| ndt.and_utc().timestamp() - i64::from(o.seconds());
        let shown = |o: jiff::tz::Offset| {
            FixedOffset::east_opt(o.seconds())
                .and_then(|f| f.from_local_datetime(&ndt).single())
                .map(|d| d.format(FMT).to_string())
                .unwrap_or_default()
        };
        match self.tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => Ok(at(offset)),
            AmbiguousOffset::Fold { before, after } => {
                Err(Dst::Ambiguous(shown(before), shown(after)))
            }
            AmbiguousOffset::Gap { .. } => Err(Dst::Gap),
        }
    }
}

impl PartialEq for NamedZone {
    fn eq(&self, other: &NamedZone) -> bool {
        self.name == other.name
    }
}

impl Eq for NamedZone {}

impl std::fmt::Debug for NamedZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Zone {
    /// `utc`/`UTC` (any case), `local` (any case), or an IANA name such as `Europe/Paris`
    /// (case-sensitive, as in the tz database).
    pub fn parse(s: &str) -> Result<Zone, TimeError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") {
            Ok(Zone::Utc)
        } else if t.eq_ignore_ascii_case("local") {
            Ok(Zone::Local)
        } else {
            NamedZone::get(t)
                .map(Zone::Named)
                .ok_or_else(|| TimeError::Zone {
                    input: s.to_string(),
                })
        }
    }

    /// `UTC`, `local` or the IANA name; `Zone::parse(z.name()) == Ok(z)`.
    pub fn name(&self) -> &'static str {
        match self {
            Zone::Utc => "UTC",
            Zone::Local => "local",
            Zone::Named(z) => z.name,
        }
    }

    /// How error messages refer to the zone.
    fn describe(&self) -> String {
        match self {
            Zone::Utc => "UTC".to_string(),
            Zone::Named(z) => z.name.to_string(),
            Zone::Local => match std::env::var("TZ") {
                Ok(v) if !v.is_empty() => format!("the local time zone (TZ={v})"),
                _ => "the local time zone".to_string(),
            },
        }
    }
}

impl FromStr for Zone {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Zone, TimeError> {
        Zone::parse(s)
    }
}

impl Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Wall clock in microseconds: for run bookkeeping and health, never for state times
/// (those come from packet timestamps).
pub fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Parse a TIME argument (see the module documentation for the forms).
pub fn parse_time(s: &str, tz: &Zone) -> Result<Micros, TimeError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(time_syntax(s, "empty"));
    }
    if t.eq_ignore_ascii_case("now") {
        return Ok(Utc::now().timestamp_micros());
    }
    if let Some(rest) = t.strip_prefix('@') {
        return parse_epoch(s, rest);
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // A bare number is most likely epoch seconds; say how to write it.
        return Err(time_err(
            s,
            format!("a bare number is not a time; write @{t} for seconds since the epoch"),
        ));
    }
    parse_datetime(s, t, tz)
}

fn parse_epoch(input: &str, rest: &str) -> Result<Micros, TimeError> {
    if rest.starts_with('-') {
        return Err(time_err(input, "must not be negative"));
    }
    let (int, frac) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(time_syntax(input, "expected seconds after @"));
    }
    let frac_us = match frac {
        None => 0,
        Some(f) => {
            fraction_micros(f.as_bytes()).ok_or_else(|| time_syntax(input, "bad fraction"))?
        }
    };
    // Strip leading zeros so that a long run of them does not count as overflow.
    let digits = int.trim_start_matches('0');
    let secs = if digits.is_empty() {
        0
    } else if digits.len() > 12 {
        i64::MAX
    } else {
        digits
            .parse::<i64>()
            .map_err(|_| time_syntax(input, "expected seconds after @"))?
    };
    if secs > MAX_SECS {
        return Err(time_err(input, "out of range (after 9999-12-31)"));
    }
    Ok(secs * US_PER_SEC + frac_us)
}

/// Microseconds from the digits after a decimal point (at least one; extra digits truncated).
fn fraction_micros(f: &[u8]) -> Option<i64> {
    if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut us = 0i64;
    for i in 0..6 {
        let d = f.get(i).map_or(0, |b| i64::from(b - b'0'));
        us = us * 10 + d;
    }
    Some(us)
}

/// A byte cursor for the fixed-width date-time grammar.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Exactly `n` ASCII digits.
    fn num(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(s.iter().fold(0, |a, b| a * 10 + u32::from(b - b'0')))
    }

    /// `sep`, then exactly `n` ASCII digits.
    fn after(&mut self, sep: u8, n: usize) -> Option<u32> {
        self.eat(sep).then(|| self.num(n)).flatten()
    }

    fn digits(&mut self) -> &[u8] {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }
}

fn parse_datetime(input: &str, t: &str, zone: &Zone) -> Result<Micros, TimeError> {
    let syn = |r: &str| time_syntax(input, r);
    let mut c = Cursor {
        b: t.as_bytes(),
        i: 0,
    };
    let bad_date = || syn("expected a date YYYY-MM-DD");
    let year = c.num(4).ok_or_else(bad_date)?;
    let month = c.after(b'-', 2).ok_or_else(bad_date)?;
    let day = c.after(b'-', 2).ok_or_else(bad_date)?;
    if !(1..=12).contains(&month) {
        return Err(syn("month out of range"));
    }
    // year < 10000 always fits an i32.
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or_else(|| syn("day out of range for the month"))?;

    if c.at_end() {
        return resolve_local(input, zone, date.and_time(chrono::NaiveTime::MIN), 0);
    }
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return Err(syn("expected T or a space after the date"));
    }
    let bad_time = || syn("expected a time HH:MM:SS");
    let hour = c.num(2).ok_or_else(bad_time)?;
    let minute = c.after(b':', 2).ok_or_else(bad_time)?;
    let mut second = 0;
    let mut frac_us = 0;
    if c.eat(b':') {
        second = c.num(2).ok_or_else(bad_time)?;
        if c.eat(b'.') || c.eat(b',') {
            frac_us = fraction_micros(c.digits()).ok_or_else(|| syn("bad fraction"))?;
        }
    }
    if hour > 23 {
        return Err(syn("hour out of range"));
    }
    if minute > 59 {
        return Err(syn("minute out of range"));
    }
    if second == 60 {
        return Err(time_err(input, "leap seconds are not supported"));
    }
    if second > 59 {
        return Err(syn("second out of range"));
    }
    let ndt = date
        .and_hms_opt(hour, minute, second)
        .ok_or_else(|| syn("time out of range"))?;

    // Optional UTC offset.
    let offset_secs: i64 = match c.peek() {
        None => return resolve_local(input, zone, ndt, frac_us),
        Some(b'Z' | b'z') => {
            c.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let bad = || syn("expected a UTC offset like +01:00");
            let oh = c.num(2).ok_or_else(bad)?;
            c.eat(b':');
            let om = c.num(2).ok_or_else(bad)?;
            if oh > 23 || om > 59 {
                return Err(syn("UTC offset out of range"));
            }
            let v = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -v
            } else {
                v
            }
        }
        Some(_) => return Err(syn("unexpected text after the time")),
    };
    if !c.at_end() {
        return Err(syn("unexpected text after the UTC offset"));
    }
    // Years 0..=9999 and offsets < 1 day keep this far from i64 limits.
    let secs = ndt.and_utc().timestamp() - offset_secs;
    Ok(secs * US_PER_SEC + frac_us)
}

/// Wall-clock time `ndt` (+ `frac_us`) in `zone` to an instant, refusing DST ambiguity.
fn resolve_local(
    input: &str,
    zone: &Zone,
    ndt: NaiveDateTime,
    frac_us: i64,
) -> Result<Micros, TimeError> {
    let secs = match zone {
        Zone::Utc => Ok(ndt.and_utc().timestamp()),
        Zone::Local => resolve_in(&Local, ndt),
        Zone::Named(z) => z.resolve(ndt),
    };
    match secs {
        Ok(s) => Ok(s * US_PER_SEC + frac_us),
        Err(Dst::Ambiguous(a, b)) => Err(time_err(
            input,
            format!(
                "ambiguous in {}: the clocks were set back, so it happened twice \
                 ({a} and {b}); give an explicit UTC offset",
                zone.describe()
            ),
        )),
        Err(Dst::Gap) => Err(time_err(
            input,
            format!(
                "does not exist in {}: the clocks were set forward past it; \
                 give an explicit UTC offset",
                zone.describe()
            ),
        )),
    }
}

enum Dst {
    Ambiguous(String, String),
    Gap,
}

fn resolve_in<Z: TimeZone>(z: &Z, ndt: NaiveDateTime) -> Result<i64, Dst>
where
    Z::Offset: Display,
{
    const FMT: &str = "%Y-%m-%dT%H:%M:%S%:z";
    match z.from_local_datetime(&ndt) {
        LocalResult::Single(dt) => Ok(dt.timestamp()),
        LocalResult::Ambiguous(a, b) => Err(Dst::Ambiguous(
            a.format(FMT).to_string(),
            b.format(FMT).to_string(),
        )),
        LocalResult::None => Err(Dst::Gap),
    }
}

/// Parse a DUR argument: a bare number of seconds (`90`, `1.5`) or a sequence of
/// `<number><unit>` with units `us`, `ms`, `s`, `m`, `h`, `d`, `w` (`1h30m`, `0.250s`).
pub(crate) fn parse_duration(s: &str) -> Result<Micros, TimeError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(dur_err(s, format!("empty; {DURATION_HINT}")));
    }
    if t.starts_with('-') {
        return Err(dur_err(s, "must not be negative"));
    }
    let b = t.as_bytes();
    let mut i = 0;
    let mut total: i128 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int = &t[start..i];
        let mut frac = "";
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac = &t[fs..i];
            if frac.is_empty() {
                return Err(dur_err(s, format!("bad number; {DURATION_HINT}")));
            }
        }
        if int.is_empty() {
            return Err(dur_err(s, format!("expected a number; {DURATION_HINT}")));
        }
        let us_start = i;
        while i < b.len() && !b[i].is_ascii_digit() && b[i] != b'.' {
            i += 1;
        }
        let unit = &t[us_start..i];
        let unit_us: i128 = match unit {
            // Only a whole-string bare number means seconds; "1m30" is a mistake.
            "" if start == 0 && i == b.len() => 1_000_000,
            "" => return Err(dur_err(s, format!("missing unit after {:?}", &t[start..i]))),
            "us" | "µs" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            "w" => 604_800_000_000,
            _ => {
                return Err(dur_err(
                    s,
                    format!("unknown unit {unit:?}; use us, ms, s, m, h, d or w"),
                ))
            }
        };
        let too_large = || dur_err(s, "too large");
        // More than 20 significant digits cannot fit i64 microseconds in any unit.
        let int = int.trim_start_matches('0');
        if int.len() > 20 {
            return Err(too_large());
        }
        let whole: i128 = if int.is_empty() {
            0
        } else {
            int.parse::<i128>().map_err(|_| too_large())?
        };
        // Fraction of the unit, truncated to whole microseconds; 19 digits is plenty.
        let mut frac_part: i128 = 0;
        let mut scale: i128 = 1;
        for d in frac.bytes().take(19) {
            frac_part = frac_part * 10 + i128::from(d - b'0');
            scale *= 10;
        }
        let part = whole
            .checked_mul(unit_us)
            .and_then(|w| w.checked_add(frac_part * unit_us / scale))
            .ok_or_else(too_large)?;
        total = total.checked_add(part).ok_or_else(too_large)?;
        if total > i128::from(i64::MAX) {
            return Err(too_large());
        }
    }
    i64::try_from(total).map_err(|_| dur_err(s, "too large"))
}

/// Microseconds to a UTC `DateTime`, or `None` outside chrono's range.
fn utc(us: Micros) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// Last-resort text for instants chrono cannot represent: `@secs.micros`.
fn fallback(us: Micros) -> String {
    format!(
        "@{}.{:06}",
        us.div_euclid(US_PER_SEC),
        us.rem_euclid(US_PER_SEC)
    )
}

/// RFC 3339 UTC with microseconds: `2025-03-14T09:00:45.173988Z`.
pub fn format_rfc3339(us: Micros) -> String {
    let mut buf = [0u8; 27];
    if let Some(s) = rfc3339_into(us, &mut buf) {
        return s.to_string();
    }
    match utc(us) {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => fallback(us),
    }
}

/// [`format_rfc3339`] of an instant in years 1970..=9999 written into `buf`, without
/// chrono's format machinery (an export formats three times per lifetime); `None` outside
/// those years.
pub fn rfc3339_into(us: Micros, buf: &mut [u8; 27]) -> Option<&str> {
    // 253402300800 s: 10000-01-01T00:00:00Z.
    if !(0..253_402_300_800 * US_PER_SEC).contains(&us) {
        return None;
    }
    let secs = us / US_PER_SEC;
    let micros = us % US_PER_SEC;
    let days = secs / 86_400;
    let tod = secs % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, tod / 3600);
    put(14, 2, tod / 60 % 60);
    put(17, 2, tod % 60);
    put(20, 6, micros);
    for (i, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        buf[i] = c;
    }
    std::str::from_utf8(buf).ok()
}

/// RFC 3339 with microseconds in `zone`: `Z` for UTC, else the zone's offset
/// (`2025-03-14T10:00:45.173988+01:00`).
pub(crate) fn format_in(us: Micros, zone: &Zone) -> String {
    // Zone lookups outside years 0..=9999 can fail inside chrono; show those in UTC.
    let in_range = (MIN_SECS + 86_400..=MAX_SECS - 86_400).contains(&us.div_euclid(US_PER_SEC));
    let dt = match utc(us) {
        Some(dt) if in_range => dt,
        _ => return format_rfc3339(us),
    };
    match zone {
        Zone::Utc => format_rfc3339(us),
        Zone::Local => with_offset(dt.with_timezone(&Local)).unwrap_or_else(|| format_rfc3339(us)),
        Zone::Named(z) => z
            .offset_at(dt.timestamp())
            .and_then(|o| with_offset(dt.with_timezone(&o)))
            .unwrap_or_else(|| format_rfc3339(us)),
    }
}

/// RFC 3339 with the zone's offset, or `None` when the offset has seconds (local mean
/// time before ~1900): RFC 3339 cannot express those, and dropping them would be wrong.
fn with_offset<Z: TimeZone>(dt: DateTime<Z>) -> Option<String>
where
    Z::Offset: Display,
{
    if dt.offset().fix().local_minus_utc() % 60 != 0 {
        return None;
    }
    Some(dt.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string())
}

/// Human-friendly duration from the largest to the smallest non-zero unit:
/// `1h02m03s`, `45s`, `2d03h`, `0.250s`, `1m05.000001s`, `0s`. The output parses back
/// with [`parse_duration`] to the same value.
pub(crate) fn format_duration(us: Micros) -> String {
    let mut out = String::new();
    if us < 0 {
        out.push('-');
    }
    let abs = us.unsigned_abs();
    let sub = abs % 1_000_000;
    let secs = abs / 1_000_000;
    let vals = [secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60];
    let units = ['d', 'h', 'm', 's'];
    let nonzero = |i: usize| vals[i] != 0 || (i == 3 && sub != 0);
    let Some(first) = (0..4).find(|&i| nonzero(i)) else {
        return "0s".to_string();
    };
    let last = (0..4).rev().find(|&i| nonzero(i)).unwrap_or(first);
    for i in first..=last {
        if i == first {
            out.push_str(&vals[i].to_string());
        } else {
            out.push_str(&format!("{:02}", vals[i]));
        }
        if i == 3 && sub != 0 {
            if sub % 1000 == 0 {
                out.push_str(&format!(".{:03}", sub / 1000));
            } else {
                out.push_str(&format!(".{sub:06}"));
            }
        }
        out.push(units[i]);
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn fast_rfc3339_is_chronos_text() {
        let chrono_text = |us: Micros| {
            utc(us)
                .map(|dt| dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                .unwrap_or_default()
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut probes = vec![
            0,
            1,
            US_PER_SEC - 1,
            951_782_400 * US_PER_SEC, // 2000-02-29
            4_107_542_399 * US_PER_SEC + 999_999,
            253_402_300_799 * US_PER_SEC + 999_999,
        ];
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            probes.push((x % (253_402_300_800 * US_PER_SEC as u64)) as i64);
        }
        let mut buf = [0u8; 27];
        for us in probes {
            assert_eq!(
                rfc3339_into(us, &mut buf),
                Some(chrono_text(us).as_str()),
                "{us}"
            );
        }
        assert_eq!(rfc3339_into(-1, &mut buf), None);
        assert_eq!(rfc3339_into(253_402_300_800 * US_PER_SEC, &mut buf), None);
        assert_eq!(format_rfc3339(-1), chrono_text(-1));
    }
    use super::*;

    fn paris() -> Zone {
        Zone::parse("Europe/Paris").expect("Europe/Paris")
    }

    fn utc_t(s: &str) -> Micros {
        parse_time(s, &Zone::Utc).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err_t(s: &str, zone: &Zone) -> String {
        match parse_time(s, zone) {
            Ok(v) => panic!("{s} parsed as {v}"),
            Err(e) => e.to_string(),
        }
    }

    const T0: Micros = 1_795_168_803_000_000; // 2026-11-20T10:00:03Z

    #[test]
    fn rfc3339_forms() {
        assert_eq!(utc_t("2026-11-20T10:00:03Z"), T0);
        assert_eq!(utc_t("2026-11-20T11:00:03+01:00"), T0);
        assert_eq!(utc_t("2026-11-20T05:30:03-04:30"), T0);
        assert_eq!(utc_t("2026-11-20t10:00:03z"), T0);
        assert_eq!(utc_t("2026-11-20 10:00:03Z"), T0);
        assert_eq!(utc_t("2026-11-20T11:00:03+0100"), T0);
        assert_eq!(utc_t("  2026-11-20T10:00:03Z\n"), T0);
        assert_eq!(utc_t("2026-11-20T10:00:03.5Z"), T0 + 500_000);
        assert_eq!(utc_t("2026-11-20T10:00:03.123456Z"), T0 + 123_456);
        // Beyond microseconds is truncated.
        assert_eq!(utc_t("2026-11-20T10:00:03.123456789Z"), T0 + 123_456);
        assert_eq!(utc_t("1970-01-01T00:00:00Z"), 0);
        assert_eq!(utc_t("1969-12-31T23:59:59Z"), -US_PER_SEC);
        assert_eq!(utc_t("0000-01-01T00:00:00Z"), MIN_SECS * US_PER_SEC);
        assert_eq!(utc_t("9999-12-31T23:59:59Z"), MAX_SECS * US_PER_SEC);
    }

    #[test]
    fn offsetless_forms_use_zone() {
        assert_eq!(utc_t("2026-11-20 10:00:03"), T0);
        assert_eq!(utc_t("2026-11-20T10:00:03"), T0);
        assert_eq!(utc_t("2026-11-20 10:00:03.25"), T0 + 250_000);
        assert_eq!(utc_t("2026-11-20 10:00"), T0 - 3 * US_PER_SEC);
        assert_eq!(parse_time("2026-11-20 11:00:03", &paris()), Ok(T0));
        // Summer time in Paris is UTC+2.
        assert_eq!(
            parse_time("2026-07-01 12:00:00", &paris()),
            Ok(utc_t("2026-07-01T10:00:00Z"))
        );
        // An explicit offset wins over the zone.
        assert_eq!(parse_time("2026-11-20T10:00:03Z", &paris()), Ok(T0));
        let ny = Zone::parse("America/New_York").unwrap();
        assert_eq!(parse_time("2026-11-20 05:00:03", &ny), Ok(T0));
    }

    #[test]
    fn date_only_is_midnight() {
        assert_eq!(utc_t("2026-11-20"), utc_t("2026-11-20T00:00:00Z"));
        assert_eq!(
            parse_time("2026-11-20", &paris()),
            Ok(utc_t("2026-11-19T23:00:00Z"))
        );
    }

    #[test]
    fn epoch_forms() {
        assert_eq!(utc_t("@1795168803"), T0);
        assert_eq!(utc_t("@1795168803.25"), T0 + 250_000);
        assert_eq!(utc_t("@1795168803.0000019"), T0 + 1);
        assert_eq!(utc_t("@0"), 0);
        assert_eq!(utc_t("@000000000000000000000001"), US_PER_SEC);
        assert_eq!(utc_t("@253402300799"), MAX_SECS * US_PER_SEC);
        // The zone does not matter.
        assert_eq!(parse_time("@1795168803", &paris()), Ok(T0));
    }

    #[test]
    fn now_is_now() {
        let before = Utc::now().timestamp_micros();
        let n = utc_t("now");
        assert!(n >= before && n - before < 60 * US_PER_SEC);
        assert!(parse_time("NOW", &paris()).is_ok());
    }

    #[test]
    fn local_zone_parses_and_round_trips() {
        let z = Zone::Local;
        let t = parse_time("2026-11-20T10:00:03Z", &z).unwrap();
        let shown = format_in(t, &z);
        assert_eq!(parse_time(&shown, &z), Ok(t), "{shown}");
    }

    #[test]
    fn error_messages_name_the_value() {
        assert_eq!(
            err_t("2026-13-01 10:00:00", &Zone::Utc),
            r#"invalid time "2026-13-01 10:00:00": month out of range; expected RFC 3339 (2026-11-20T10:00:03Z), "YYYY-MM-DD HH:MM:SS" or @EPOCH"#
        );
        let cases = [
            ("", "empty"),
            ("yesterday", "expected a date YYYY-MM-DD"),
            ("2026-11-31 10:00:00", "day out of range for the month"),
            ("2026-02-29", "day out of range for the month"),
            ("2026-00-01", "month out of range"),
            ("2026-11-20 24:00:00", "hour out of range"),
            ("2026-11-20 10:60:00", "minute out of range"),
            ("2026-11-20 10:00:61", "second out of range"),
            ("2026-12-31T23:59:60Z", "leap seconds are not supported"),
            (
                "2026-11-20X10:00:00",
                "expected T or a space after the date",
            ),
            ("2026-11-20 10", "expected a time HH:MM:SS"),
            ("2026-11-20 10:00:00.Z", "bad fraction"),
            ("2026-11-20 10:00:00+1", "expected a UTC offset like +01:00"),
            ("2026-11-20 10:00:00+24:00", "UTC offset out of range"),
            ("2026-11-20 10:00:00 UTC", "unexpected text after the time"),
            (
                "2026-11-20 10:00:00Zfoo",
                "unexpected text after the UTC offset",
            ),
            ("2026-11-20Z", "expected T or a space after the date"),
            ("26-11-20", "expected a date YYYY-MM-DD"),
            ("+2026-11-20", "expected a date YYYY-MM-DD"),
            (
                "1795168803",
                "write @1795168803 for seconds since the epoch",
            ),
            ("@-5", "must not be negative"),
            ("@", "expected seconds after @"),
            ("@abc", "expected seconds after @"),
            ("@1.", "bad fraction"),
            ("@1e9", "expected seconds after @"),
            ("@253402300800", "out of range (after 9999-12-31)"),
            ("@99999999999999999999999999", "out of range"),
            ("２０２６-11-20", "expected a date YYYY-MM-DD"),
        ];
        for (input, want) in cases {
            let e = err_t(input, &Zone::Utc);
            assert!(
                e.starts_with(&format!("invalid time {input:?}: ")),
                "{input}: {e}"
            );
            assert!(e.contains(want), "{input}: {e}");
        }
    }

    #[test]
    fn dst_gap_is_an_error() {
        // Paris springs forward 2026-03-29 02:00 CET -> 03:00 CEST.
        let e = err_t("2026-03-29 02:30:00", &paris());
        assert_eq!(
            e,
            r#"invalid time "2026-03-29 02:30:00": does not exist in Europe/Paris: the clocks were set forward past it; give an explicit UTC offset"#
        );
        // Just around the gap is fine.
        assert_eq!(
            parse_time("2026-03-29 01:59:59", &paris()),
            Ok(utc_t("2026-03-29T00:59:59Z"))
        );
        assert_eq!(
            parse_time("2026-03-29 03:00:00", &paris()),
            Ok(utc_t("2026-03-29T01:00:00Z"))
        );
        // With an explicit offset the same wall clock reading is accepted.
        assert!(parse_time("2026-03-29 02:30:00+01:00", &paris()).is_ok());
        // America/Sao_Paulo used to skip midnight itself, so a bare date can fail too.
        let sp = Zone::parse("America/Sao_Paulo").unwrap();
        assert!(err_t("2018-11-04", &sp).contains("does not exist in America/Sao_Paulo"));
    }

    #[test]
    fn dst_overlap_is_an_error_naming_both() {
        // Paris falls back 2026-10-25 03:00 CEST -> 02:00 CET.
        let e = err_t("2026-10-25 02:30:00", &paris());
        assert_eq!(
            e,
            r#"invalid time "2026-10-25 02:30:00": ambiguous in Europe/Paris: the clocks were set back, so it happened twice (2026-10-25T02:30:00+02:00 and 2026-10-25T02:30:00+01:00); give an explicit UTC offset"#
        );
        let a = parse_time("2026-10-25T02:30:00+02:00", &paris()).unwrap();
        let b = parse_time("2026-10-25T02:30:00+01:00", &paris()).unwrap();
        assert_eq!(b - a, 3600 * US_PER_SEC);
        assert_eq!(format_in(a, &paris()), "2026-10-25T02:30:00.000000+02:00");
        assert_eq!(format_in(b, &paris()), "2026-10-25T02:30:00.000000+01:00");
    }

    #[test]
    fn zones() {
        assert_eq!(Zone::parse("utc"), Ok(Zone::Utc));
        assert_eq!(Zone::parse("UTC"), Ok(Zone::Utc));
        assert_eq!(Zone::parse("local"), Ok(Zone::Local));
        assert_eq!(Zone::parse("Local"), Ok(Zone::Local));
        assert_eq!(Zone::parse("Europe/Paris"), Ok(paris()));
        assert_eq!("Europe/Paris".parse::<Zone>(), Ok(paris()));
        assert_eq!(Zone::default(), Zone::Local);
        for z in [Zone::Utc, Zone::Local, paris()] {
            assert_eq!(Zone::parse(z.name()), Ok(z));
            assert_eq!(z.to_string(), z.name());
        }
        let e = Zone::parse("Mars/Olympus").unwrap_err().to_string();
        assert_eq!(
            e,
            r#"unknown time zone "Mars/Olympus": expected "UTC", "local" or an IANA name such as "Europe/Paris""#
        );
        assert!(Zone::parse("").is_err());
    }

    #[test]
    fn durations() {
        let s = US_PER_SEC;
        let cases = [
            ("90s", 90 * s),
            ("2m", 120 * s),
            ("1h", 3600 * s),
            ("1d", 86_400 * s),
            ("1w", 7 * 86_400 * s),
            ("500ms", 500_000),
            ("250us", 250),
            ("250µs", 250),
            ("1h30m", 5400 * s),
            ("1h02m03s", 3723 * s),
            ("1d1s", 86_401 * s),
            ("90", 90 * s),
            ("0", 0),
            ("0s", 0),
            ("1.5", 1_500_000),
            ("0.250s", 250_000),
            ("1.5h", 5400 * s),
            ("0.0000019s", 1),
            (" 2m ", 120 * s),
            ("9223372036854775807us", i64::MAX),
            ("00000000000000000000000000001s", s),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn duration_errors() {
        assert_eq!(
            parse_duration("-5s").unwrap_err().to_string(),
            r#"invalid duration "-5s": must not be negative"#
        );
        let cases = [
            ("", "empty"),
            ("abc", "expected a number"),
            ("5x", r#"unknown unit "x""#),
            ("5 s", r#"unknown unit " s""#),
            ("5S", r#"unknown unit "S""#),
            ("1m30", r#"missing unit after "30""#),
            ("1.s", "bad number"),
            (".5s", "expected a number"),
            ("h", "expected a number"),
            ("+5s", "expected a number"),
            ("9223372036854775808us", "too large"),
            ("106751992d", "too large"),
            ("99999999999999999999999999999999h", "too large"),
            ("106751991d106751991d", "too large"),
        ];
        for (input, want) in cases {
            let e = parse_duration(input).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid duration {input:?}: ")),
                "{input}: {e}"
            );
            assert!(e.contains(want), "{input}: {e}");
        }
    }

    #[test]
    fn formatting() {
        let t = utc_t("2025-03-14T09:00:45.173988Z");
        assert_eq!(format_rfc3339(t), "2025-03-14T09:00:45.173988Z");
        assert_eq!(format_in(t, &Zone::Utc), "2025-03-14T09:00:45.173988Z");
        assert_eq!(format_in(t, &paris()), "2025-03-14T10:00:45.173988+01:00");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // Truncation toward the past, also before 1970.
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn durations_format() {
        let s = US_PER_SEC;
        let cases = [
            (0, "0s"),
            (45 * s, "45s"),
            (3723 * s, "1h02m03s"),
            ((2 * 86_400 + 3 * 3600) * s, "2d03h"),
            (250_000, "0.250s"),
            (1, "0.000001s"),
            (90 * s, "1m30s"),
            (3603 * s, "1h00m03s"),
            (65 * s + 1, "1m05.000001s"),
            (-90 * s, "-1m30s"),
        ];
        for (us, want) in cases {
            assert_eq!(format_duration(us), want, "{us}");
        }
        assert_eq!(format_duration(i64::MIN), "-106751991d04h00m54.775808s");
    }

    #[test]
    fn round_trips() {
        for t in [
            0,
            T0,
            T0 + 173_988,
            -1,
            MIN_SECS * US_PER_SEC,
            MAX_SECS * US_PER_SEC + 999_999,
        ] {
            assert_eq!(parse_time(&format_rfc3339(t), &paris()), Ok(t));
            for z in [Zone::Utc, paris(), Zone::Local] {
                assert_eq!(parse_time(&format_in(t, &z), &paris()), Ok(t), "{t} {z}");
            }
        }
        for d in [
            0,
            1,
            999,
            250_000,
            45 * US_PER_SEC,
            3723 * US_PER_SEC + 17,
            i64::MAX,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d}");
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        for us in [i64::MIN, i64::MIN + 1, i64::MAX, -1, 0] {
            let _ = format_rfc3339(us);
            let _ = format_duration(us);
            for z in [Zone::Utc, Zone::Local, paris()] {
                let _ = format_in(us, &z);
            }
        }
        assert_eq!(format_rfc3339(i64::MAX), "@9223372036854.775807");
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_time(&s, &Zone::Utc);
            let _ = parse_time(&s, &paris());
            let _ = parse_duration(&s);
            let _ = Zone::parse(&s);
        }

        #[test]
        fn time_like_strings_never_panic(
            s in "[@+-]?[0-9]{0,5}-?[0-9]{0,3}-?[0-9]{0,3}[Tt ]?[0-9]{0,3}:?[0-9]{0,3}:?[0-9]{0,3}[.,]?[0-9]{0,12}[Zz+-]?[0-9:]{0,6}"
        ) {
            let _ = parse_time(&s, &paris());
            let _ = parse_duration(&s);
        }

        #[test]
        fn rfc3339_round_trips(us in MIN_SECS * US_PER_SEC..=MAX_SECS * US_PER_SEC + 999_999) {
            proptest::prop_assert_eq!(parse_time(&format_rfc3339(us), &Zone::Utc), Ok(us));
            proptest::prop_assert_eq!(parse_time(&format_in(us, &paris()), &Zone::Utc), Ok(us));
        }

        #[test]
        fn duration_round_trips(us in 0..=i64::MAX) {
            proptest::prop_assert_eq!(parse_duration(&format_duration(us)), Ok(us));
        }

        #[test]
        fn formatting_never_panics(us: i64) {
            let _ = format_rfc3339(us);
            let _ = format_duration(us);
            let _ = format_in(us, &paris());
            let _ = format_in(us, &Zone::Local);
        }
    }
}
