//! Fixed-window request counters: per API key per minute, and failed logins per email per minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts events per key in one-minute windows.
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// A limiter allowing `per_minute` events per key per minute; 0 allows everything.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute, windows: Mutex::new(HashMap::new()) }
    }

    /// Records one event for `key`. `Err(seconds)` when the limit is reached: the seconds until the window ends.
    pub fn hit(&self, key: &str) -> Result<(), u64> {
        self.check(key, true)
    }

    /// Whether `key` is over the limit, without recording an event.
    pub fn check_only(&self, key: &str) -> Result<(), u64> {
        self.check(key, false)
    }

    fn check(&self, key: &str, record: bool) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        if record {
            entry.1 += 1;
        }
        Ok(())
    }

    /// Forgets `key` (after a successful login, say).
    pub fn reset(&self, key: &str) {
        if let Ok(mut w) = self.windows.lock() {
            w.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit_then_says_when_to_retry() {
        let l = RateLimiter::new(3);
        assert!(l.hit("k").is_ok() && l.hit("k").is_ok() && l.hit("k").is_ok());
        let retry = l.hit("k").unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(l.hit("other").is_ok());
        l.reset("k");
        assert!(l.hit("k").is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let l = RateLimiter::new(0);
        assert!((0..10_000).all(|_| l.hit("k").is_ok()));
    }
}
