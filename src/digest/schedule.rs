//! When the weekly digest is due (pure): `archivist serve` asks every few minutes with the
//! current time and the last week the ledger completed.

use crate::config::Weekday;
use crate::message::{IsoWeek, ZoneOffset};

/// The week whose digest is due at `now`, unless the ledger already completed it: the latest
/// week whose send time (the configured weekday and hour, in `zone`, of the week after it) has
/// passed. After downtime only the latest missed week is due (a pile of stale digests helps
/// nobody), and a completed week is never due again, so a week is sent once, never twice.
pub fn due_week(
    now: i64,
    zone: ZoneOffset,
    weekday: Weekday,
    hour: u8,
    last_completed: Option<IsoWeek>,
) -> Option<IsoWeek> {
    let send_time =
        |w: IsoWeek| w.end(zone) + weekday.days_from_monday() * 86_400 + i64::from(hour) * 3_600;
    let previous = IsoWeek::containing(now, zone).prev();
    let candidate = if send_time(previous) <= now {
        previous
    } else {
        previous.prev()
    };
    match last_completed {
        Some(done) if done >= candidate => None,
        _ => Some(candidate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_weeks() {
        let w = |s: &str| IsoWeek::parse(s).expect("week");
        let utc = ZoneOffset::UTC;
        // 2023-W21 starts Monday 2023-05-22 00:00 UTC = 1_684_713_600.
        let monday = 1_684_713_600;
        // (now, weekday, hour, last completed, due)
        type Case<'a> = (i64, Weekday, u8, Option<&'a str>, Option<&'a str>);
        let cases: &[Case] = &[
            // Monday 07:00 is the send time of W20.
            (
                monday + 7 * 3600 - 1,
                Weekday::Monday,
                7,
                Some("2023-W19"),
                None,
            ),
            (
                monday + 7 * 3600,
                Weekday::Monday,
                7,
                Some("2023-W19"),
                Some("2023-W20"),
            ),
            (
                monday + 7 * 3600,
                Weekday::Monday,
                7,
                Some("2023-W20"),
                None,
            ),
            // Down for three weeks: only the latest week is sent.
            (
                monday + 7 * 3600,
                Weekday::Monday,
                7,
                Some("2023-W17"),
                Some("2023-W20"),
            ),
            (
                monday + 7 * 3600,
                Weekday::Monday,
                7,
                None,
                Some("2023-W20"),
            ),
            // A Friday schedule: W20 is sent on Friday of W21.
            (
                monday + 3 * 86_400,
                Weekday::Friday,
                9,
                Some("2023-W18"),
                Some("2023-W19"),
            ),
            (
                monday + 4 * 86_400 + 9 * 3600,
                Weekday::Friday,
                9,
                Some("2023-W19"),
                Some("2023-W20"),
            ),
        ];
        for &(now, day, hour, done, want) in cases {
            let got = due_week(now, utc, day, hour, done.map(w));
            assert_eq!(got, want.map(w), "now {now} {day:?} {hour} done {done:?}");
        }
        // In +02:00 the week starts two hours earlier.
        let plus2 = ZoneOffset::parse("+02:00").expect("zone");
        assert_eq!(
            due_week(
                monday - 7200,
                plus2,
                Weekday::Monday,
                0,
                Some(w("2023-W19"))
            ),
            Some(w("2023-W20"))
        );
    }
}
