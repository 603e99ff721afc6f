//! Simulated time: parsing eventsim's date-times, users' local time (US zones with
//! daylight saving), and the daily and weekly cycle of activity that thins session starts.

use warehouse::time::{DateTimeParts, civil_from_days, days_from_civil};

pub const SECOND_MS: i64 = 1000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
pub const WEEK_MS: i64 = 7 * DAY_MS;
/// The Julian year: growth and attrition rates are per year of this length.
pub const YEAR_MS: i64 = 31_557_600 * SECOND_MS;

/// Epoch milliseconds of an ISO local date-time read as UTC, as eventsim's `-s`/`-e` take
/// it: `2026-01-05T00:00:00`, with the seconds, the whole time, or a trailing `Z` optional
/// and a space allowed for the `T`.
pub fn parse_date_time(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an ISO date-time such as 2026-01-05T00:00:00 (UTC)");
    let trimmed = text.trim().trim_end_matches('Z');
    let (date, time) = match trimmed.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (trimmed, None),
    };
    let mut date_parts = date.splitn(3, '-');
    let (Some(year), Some(month), Some(day)) =
        (date_parts.next(), date_parts.next(), date_parts.next())
    else {
        return Err(bad());
    };
    let number = |s: &str, digits: usize| -> Result<u32, String> {
        if s.len() != digits || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (year, month, day) = (number(year, 4)?, number(month, 2)?, number(day, 2)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!("{text:?} is not a calendar date"));
    }
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if let Some(time) = time {
        let mut parts = time.split(':');
        hour = number(parts.next().unwrap_or(""), 2)?;
        minute = number(parts.next().ok_or_else(bad)?, 2)?;
        second = match parts.next() {
            Some(s) => number(s.split('.').next().unwrap_or(s), 2)?,
            None => 0,
        };
        if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
            return Err(bad());
        }
    }
    let days = days_from_civil(i64::from(year), month, day);
    Ok(days * DAY_MS
        + i64::from(hour) * HOUR_MS
        + i64::from(minute) * MINUTE_MS
        + i64::from(second) * SECOND_MS)
}

/// The inverse of [`parse_date_time`], for messages: `2026-01-05T00:00:00`.
pub fn format_date_time(ms: i64) -> String {
    let p = DateTimeParts::from_epoch_millis(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    )
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A US time zone: its standard offset from UTC and whether it keeps daylight saving
/// time by the federal rule (second Sunday of March to first Sunday of November).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    pub standard_offset_minutes: i16,
    pub daylight_saving: bool,
}

impl Zone {
    /// The zone of an IANA name of the kind the ZIP-code data carries; `None` for a name
    /// outside the US zones.
    pub fn from_iana(name: &str) -> Option<Zone> {
        let zone = |hours: i16, daylight_saving| Zone {
            standard_offset_minutes: hours * 60,
            daylight_saving,
        };
        Some(match name {
            "America/Phoenix" => zone(-7, false),
            "Pacific/Honolulu" => zone(-10, false),
            "America/Puerto_Rico" | "America/St_Thomas" => zone(-4, false),
            "Pacific/Guam" | "Pacific/Saipan" => zone(10, false),
            "Pacific/Pago_Pago" => zone(-11, false),
            "America/Adak" => zone(-10, true),
            "America/Boise" | "America/Denver" => zone(-7, true),
            "America/Los_Angeles" => zone(-8, true),
            "America/Chicago" | "America/Menominee" => zone(-6, true),
            "America/New_York" | "America/Detroit" => zone(-5, true),
            _ if name.starts_with("America/Indiana/") => {
                // Two of Indiana's counties keep Central time.
                if name.ends_with("/Knox") || name.ends_with("/Tell_City") {
                    zone(-6, true)
                } else {
                    zone(-5, true)
                }
            }
            _ if name.starts_with("America/Kentucky/") => zone(-5, true),
            _ if name.starts_with("America/North_Dakota/") => zone(-6, true),
            "America/Anchorage" | "America/Juneau" | "America/Sitka" | "America/Nome"
            | "America/Yakutat" | "America/Metlakatla" => zone(-9, true),
            _ => return None,
        })
    }

    /// The zone nearest a longitude, for places whose zone name is unknown.
    pub fn from_longitude(lon: f64) -> Zone {
        let hours = libm::round(lon / 15.0).clamp(-12.0, 14.0) as i16;
        Zone {
            standard_offset_minutes: hours * 60,
            daylight_saving: false,
        }
    }

    /// The local time, in epoch-style milliseconds, of an instant in UTC.
    pub fn local(self, utc_ms: i64) -> i64 {
        let standard = utc_ms + i64::from(self.standard_offset_minutes) * MINUTE_MS;
        if self.daylight_saving && in_us_daylight_saving(standard) {
            standard + HOUR_MS
        } else {
            standard
        }
    }
}

/// Whether a local standard time lies in US daylight saving time, which begins at 02:00
/// standard time on the second Sunday of March and ends at 01:00 standard time (02:00
/// daylight time) on the first Sunday of November.
fn in_us_daylight_saving(local_standard_ms: i64) -> bool {
    let year = DateTimeParts::from_epoch_millis(local_standard_ms).year;
    let begins = nth_sunday(year, 3, 2) * DAY_MS + 2 * HOUR_MS;
    let ends = nth_sunday(year, 11, 1) * DAY_MS + HOUR_MS;
    (begins..ends).contains(&local_standard_ms)
}

/// Epoch days of known weekdays, the first week of 1970: day 0 was a Thursday.
const THURSDAY: i64 = 0;
const SUNDAY: i64 = 3;
const MONDAY: i64 = 4;

/// The epoch day of the `n`th Sunday of a month.
fn nth_sunday(year: i64, month: u32, n: i64) -> i64 {
    nth_weekday(year, month, SUNDAY, n)
}

/// The epoch day of the `n`th given weekday (named by an epoch day that fell on it) of
/// a month.
fn nth_weekday(year: i64, month: u32, weekday: i64, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    first + (weekday - first).rem_euclid(7) + 7 * (n - 1)
}

/// Whether an epoch day is a US federal holiday, as eventsim's holiday calendar (jollyday's
/// United States) has them: New Year's Day, Martin Luther King Jr. Day, Presidents' Day,
/// Memorial Day, Independence Day, Labor Day, Columbus Day, Veterans Day, Thanksgiving and
/// Christmas, on the day itself (not the observed weekday).
pub fn is_us_holiday(epoch_day: i64) -> bool {
    let (year, month, day) = civil_from_days(epoch_day);
    let nth_monday = |month: u32, n: i64| nth_weekday(year, month, MONDAY, n);
    match (month, day) {
        (1, 1) | (7, 4) | (11, 11) | (12, 25) => true,
        (1, _) => epoch_day == nth_monday(1, 3),
        (2, _) => epoch_day == nth_monday(2, 3),
        // The last Monday of May: the first of June's Mondays, a week earlier.
        (5, _) => epoch_day == nth_monday(6, 1) - 7,
        (9, _) => epoch_day == nth_monday(9, 1),
        (10, _) => epoch_day == nth_monday(10, 2),
        (11, _) => epoch_day == nth_weekday(year, 11, THURSDAY, 4),
        _ => false,
    }
}

/// Whether users have the day off: a Saturday, a Sunday or a US federal holiday.
fn is_day_off(epoch_day: i64) -> bool {
    // Epoch day 2 was a Saturday.
    (epoch_day - 2).rem_euclid(7) < 2 || is_us_holiday(epoch_day)
}

/// How busy users are at a local time, as a factor in (0, 1] by which candidate session
/// starts are kept (thinning a Poisson process, so starts follow the factor exactly).
///
/// The daily cycle peaks at 15:00 and bottoms out at 03:00, where the factor is
/// `1 - damping`. On days off (weekends and US federal holidays, as in eventsim) it is
/// further multiplied by `1 - weekend-damping`; each change is a linear ramp that begins
/// `weekend-damping-offset` minutes before the midnight where the day off begins or ends
/// and lasts `weekend-damping-scale` minutes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activity {
    pub damping: f64,
    pub weekend_damping: f64,
    pub weekend_offset_ms: i64,
    pub weekend_scale_ms: i64,
}

impl Activity {
    pub fn factor(&self, local_ms: i64) -> f64 {
        self.daily(local_ms) * self.weekly(local_ms)
    }

    pub fn daily(&self, local_ms: i64) -> f64 {
        let hour = local_ms.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
        let phase = 2.0 * std::f64::consts::PI * (hour - 15.0) / 24.0;
        1.0 - self.damping * (1.0 - libm::cos(phase)) / 2.0
    }

    /// The daily cycle's mean over a day: its cosine averages out.
    pub fn daily_mean(&self) -> f64 {
        1.0 - self.damping / 2.0
    }

    pub fn weekly(&self, local_ms: i64) -> f64 {
        1.0 - self.weekend_damping * self.weekendness(local_ms)
    }

    /// 1 on a day off, 0 on a working day, linear on the ramps between them.
    fn weekendness(&self, local_ms: i64) -> f64 {
        let today = local_ms.div_euclid(DAY_MS);
        let scale = self.weekend_scale_ms.max(1) as f64;
        // Start from the day before yesterday and add each change at the midnights around
        // today whose ramp can reach it: a ramp starts at most a day before its midnight
        // and lasts at most a day (the config's checks), so no other midnight matters.
        let off: [f64; 5] =
            std::array::from_fn(|i| f64::from(u8::from(is_day_off(today - 2 + i as i64))));
        let mut value = off[0];
        for (i, pair) in off.windows(2).enumerate() {
            let change = pair[1] - pair[0];
            if change != 0.0 {
                let midnight = (today - 1 + i as i64) * DAY_MS;
                let ramp_start = midnight - self.weekend_offset_ms;
                value += change * ((local_ms - ramp_start) as f64 / scale).clamp(0.0, 1.0);
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_parse_in_the_forms_eventsim_users_write() {
        let midnight = 20_458 * DAY_MS; // 2026-01-05
        assert_eq!(parse_date_time("2026-01-05T00:00:00"), Ok(midnight));
        assert_eq!(parse_date_time("2026-01-05"), Ok(midnight));
        assert_eq!(parse_date_time("2026-01-05 00:00"), Ok(midnight));
        assert_eq!(
            parse_date_time("2026-01-05T13:14:15Z"),
            Ok(midnight + 13 * HOUR_MS + 14 * MINUTE_MS + 15 * SECOND_MS)
        );
        assert_eq!(format_date_time(midnight + HOUR_MS), "2026-01-05T01:00:00");
        for bad in [
            "",
            "2026-1-5",
            "2026-02-30",
            "2026-01-05T24:00:00",
            "yesterday",
            "2026-01-05T10",
        ] {
            assert!(parse_date_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn daylight_saving_follows_the_federal_rule() {
        let new_york = Zone::from_iana("America/New_York").unwrap();
        // 2026-03-08 is the second Sunday of March: 07:00 UTC is 02:00 EST, so 03:00 EDT.
        let change = parse_date_time("2026-03-08T07:00:00").unwrap();
        assert_eq!(new_york.local(change - 1), change - 1 - 5 * HOUR_MS);
        assert_eq!(new_york.local(change), change - 4 * HOUR_MS);
        // 2026-11-01 is the first Sunday of November: 06:00 UTC is 01:00 EST again.
        let back = parse_date_time("2026-11-01T06:00:00").unwrap();
        assert_eq!(new_york.local(back - 1), back - 1 - 4 * HOUR_MS);
        assert_eq!(new_york.local(back), back - 5 * HOUR_MS);
        let phoenix = Zone::from_iana("America/Phoenix").unwrap();
        assert_eq!(phoenix.local(change), change - 7 * HOUR_MS);
        assert_eq!(Zone::from_iana("Europe/Paris"), None);
        assert_eq!(
            Zone::from_longitude(-122.4).standard_offset_minutes,
            -8 * 60
        );
    }

    fn example_activity() -> Activity {
        Activity {
            damping: 0.09375,
            weekend_damping: 0.5,
            weekend_offset_ms: 180 * MINUTE_MS,
            weekend_scale_ms: 360 * MINUTE_MS,
        }
    }

    #[test]
    fn the_daily_cycle_peaks_in_the_afternoon_and_dips_at_night() {
        let activity = example_activity();
        let monday = 20_458 * DAY_MS;
        let at = |hour: i64| activity.daily(monday + hour * HOUR_MS);
        assert!((at(15) - 1.0).abs() < 1e-12);
        assert!((at(3) - (1.0 - 0.09375)).abs() < 1e-12);
        assert!(at(12) < at(15) && at(18) < at(15) && at(6) > at(3));
        let minutes = 24 * 60;
        let mean = (0..minutes)
            .map(|m| activity.daily(monday + m * MINUTE_MS + MINUTE_MS / 2))
            .sum::<f64>()
            / minutes as f64;
        assert!((mean - activity.daily_mean()).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn us_federal_holidays_fall_on_their_days() {
        let holidays = |year: i64| -> Vec<(u32, u32)> {
            (days_from_civil(year, 1, 1)..days_from_civil(year + 1, 1, 1))
                .filter(|&d| is_us_holiday(d))
                .map(|d| {
                    let (_, m, day) = civil_from_days(d);
                    (m, day)
                })
                .collect()
        };
        // 2024 from the federal calendar.
        assert_eq!(
            holidays(2024),
            [
                (1, 1),
                (1, 15),
                (2, 19),
                (5, 27),
                (7, 4),
                (9, 2),
                (10, 14),
                (11, 11),
                (11, 28),
                (12, 25)
            ]
        );
        assert_eq!(
            holidays(2026),
            [
                (1, 1),
                (1, 19),
                (2, 16),
                (5, 25),
                (7, 4),
                (9, 7),
                (10, 12),
                (11, 11),
                (11, 26),
                (12, 25)
            ]
        );
    }

    #[test]
    fn a_holiday_is_damped_like_a_weekend_day() {
        let activity = example_activity();
        // Monday 2024-01-01, New Year's Day, after a weekend: damped all day, ramping
        // back up around the midnight that ends it.
        let new_year = days_from_civil(2024, 1, 1) * DAY_MS;
        assert_eq!(activity.weekly(new_year + 12 * HOUR_MS), 0.5);
        assert_eq!(activity.weekly(new_year - 12 * HOUR_MS), 0.5);
        assert!((activity.weekly(new_year + DAY_MS) - 0.75).abs() < 1e-12);
        assert_eq!(activity.weekly(new_year + DAY_MS + 180 * MINUTE_MS), 1.0);
        // Thursday 2024-07-04 between working days: ramps at both of its midnights.
        let fourth = days_from_civil(2024, 7, 4) * DAY_MS;
        assert_eq!(activity.weekly(fourth - 180 * MINUTE_MS), 1.0);
        assert!((activity.weekly(fourth) - 0.75).abs() < 1e-12);
        assert_eq!(activity.weekly(fourth + 12 * HOUR_MS), 0.5);
        assert!((activity.weekly(fourth + DAY_MS) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn weekends_are_damped_with_ramps_before_their_edges() {
        let activity = example_activity();
        let saturday = 20_463 * DAY_MS; // 2026-01-10
        assert_eq!(DateTimeParts::from_epoch_millis(saturday).day_of_week(), 6);
        let monday = saturday + 2 * DAY_MS;
        // Mid-week and mid-weekend.
        assert_eq!(activity.weekly(saturday - 3 * DAY_MS), 1.0);
        assert_eq!(activity.weekly(saturday + DAY_MS), 0.5);
        // Ramps begin 180 minutes before each midnight and last 360 minutes, so they are
        // halfway at the midnights themselves.
        assert_eq!(activity.weekly(saturday - 180 * MINUTE_MS), 1.0);
        assert!((activity.weekly(saturday) - 0.75).abs() < 1e-12);
        assert_eq!(activity.weekly(saturday + 180 * MINUTE_MS), 0.5);
        assert_eq!(activity.weekly(monday - 180 * MINUTE_MS), 0.5);
        assert!((activity.weekly(monday) - 0.75).abs() < 1e-12);
        assert_eq!(activity.weekly(monday + 180 * MINUTE_MS), 1.0);
    }
}
