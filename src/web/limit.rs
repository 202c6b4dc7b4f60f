//! Fixed-window rate limits for the forms that send mail: per client and per address. Kept in
//! memory (a restart forgets them) and bounded: expired windows are dropped when the table
//! grows, and a full table refuses new keys rather than growing without end.

use std::collections::HashMap;
use std::sync::Mutex;

/// Keys tracked at most; beyond this, new keys are refused until windows expire.
const MAX_KEYS: usize = 100_000;

/// At most `max` events per key in each window of `window` seconds.
pub struct RateLimit {
    max: u32,
    window: i64,
    seen: Mutex<HashMap<String, (i64, u32)>>,
}

impl RateLimit {
    /// A limit of `max` events per `window` seconds.
    pub fn new(max: u32, window: i64) -> RateLimit {
        RateLimit {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an event for `key` at `now` and says whether it is within the limit.
    pub fn allow(&self, key: &str, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() >= MAX_KEYS && !seen.contains_key(key) {
            let window = self.window;
            seen.retain(|_, (start, _)| now - *start < window);
            if seen.len() >= MAX_KEYS {
                return false;
            }
        }
        let entry = seen.entry(key.to_string()).or_insert((now, 0));
        if now - entry.0 >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_key_and_reset() {
        let limit = RateLimit::new(2, 60);
        let steps: &[(&str, i64, bool)] = &[
            ("a", 0, true),
            ("a", 10, true),
            ("a", 59, false),
            ("b", 59, true),
            ("a", 60, true),
            ("a", 61, true),
            ("a", 62, false),
        ];
        for &(key, now, expected) in steps {
            assert_eq!(limit.allow(key, now), expected, "{key} at {now}");
        }
    }
}
