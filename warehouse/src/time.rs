//! Calendar arithmetic on epoch milliseconds (UTC), for the date dimensions and their keys.

/// The calendar parts of an instant, in UTC, at second precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTimeParts {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Days since 1970-01-01.
    pub epoch_day: i64,
}

impl DateTimeParts {
    /// Splits epoch milliseconds; milliseconds below the second are dropped.
    pub fn from_epoch_millis(millis: i64) -> DateTimeParts {
        let secs = millis.div_euclid(1000);
        let epoch_day = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(epoch_day);
        DateTimeParts {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            epoch_day,
        }
    }

    /// ISO weekday: 1 is Monday, 7 is Sunday.
    pub fn day_of_week(&self) -> u32 {
        // 1970-01-01 was a Thursday.
        (self.epoch_day + 3).rem_euclid(7) as u32 + 1
    }

    pub fn quarter(&self) -> u32 {
        (self.month - 1) / 3 + 1
    }

    /// Seconds since the epoch at midnight of this day.
    pub fn midnight_epoch_seconds(&self) -> i64 {
        self.epoch_day * 86_400
    }

    /// Seconds since the epoch, at second precision.
    pub fn epoch_seconds(&self) -> i64 {
        self.midnight_epoch_seconds() + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by the usual shift of
/// the year to start in March so that leap days fall at its end.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // Days from 0000-03-01 to 1970-01-01.
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date: the inverse of
/// [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date; `None` for anything else, 2026-02-30
/// included.
pub fn parse_iso_date(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    // The day must come back as written, which rejects days past the month's end.
    (text.len() == 10 && civil_from_days(days) == (year, month, day)).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    fn check(millis: i64, expected: (i64, u32, u32, u32, u32, u32), weekday: u32) {
        let p = DateTimeParts::from_epoch_millis(millis);
        assert_eq!(
            (p.year, p.month, p.day, p.hour, p.minute, p.second),
            expected
        );
        assert_eq!(p.day_of_week(), weekday);
    }

    #[test]
    fn epoch_start_is_a_thursday() {
        check(0, (1970, 1, 1, 0, 0, 0), 4);
    }

    #[test]
    fn leap_day_and_the_day_after() {
        // 2024-02-29T23:59:59.999Z and one millisecond later.
        check(1_709_251_199_999, (2024, 2, 29, 23, 59, 59), 4);
        check(1_709_251_200_000, (2024, 3, 1, 0, 0, 0), 5);
    }

    #[test]
    fn century_rules_hold() {
        // 2100-03-01 follows 2100-02-28: 2100 is not a leap year.
        check(4_107_542_400_000, (2100, 3, 1, 0, 0, 0), 1);
        check(4_107_456_000_000, (2100, 2, 28, 0, 0, 0), 7);
    }

    #[test]
    fn last_storable_instant() {
        check(crate::raw::MAX_EPOCH_MILLIS, (9999, 12, 31, 23, 59, 59), 5);
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_previous_one() {
        let mut previous = civil_from_days(-1);
        for day in 0..146_097 {
            let (y, m, d) = civil_from_days(day);
            let next_of_previous = if d == 1 {
                m == previous.1 % 12 + 1 && (m != 1 || y == previous.0 + 1)
            } else {
                (y, m, d - 1) == previous
            };
            assert!(next_of_previous, "{previous:?} then {:?}", (y, m, d));
            previous = (y, m, d);
        }
    }
}
