//! When a failed upload of a backup to the S3 target is tried again: pure arithmetic, tested without clocks.
//!
//! A failure that is likely to pass by itself (the service unreachable, a timeout, a 5xx, a 429) is retried after
//! 1 min, 5 min, 30 min, 2 h, then every 6 h. A refusal (a 4xx: a wrong secret, access denied, no such bucket)
//! needs a person, so it skips the quick steps and starts at 30 min: a fixed bucket policy is picked up by the next
//! attempt, a fixed `s3_*` key takes a restart, and a restart tries every waiting upload at once. Either way an
//! upload gets at most [`UPLOAD_ATTEMPTS`] attempts (about three days), then stays `failed`.

use std::time::Duration;

/// Why an upload attempt failed, as far as trying again goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFailure {
    /// Connection errors, timeouts, 5xx and 429 answers, a size that does not match: likely to pass by themselves.
    Transient,
    /// The service refused the request (a 4xx other than 408 and 429), or the local file cannot be read: retried
    /// slowly, since it needs someone to change something.
    Refused,
    /// Nothing can ever be uploaded (the backup has no file): not retried.
    Hopeless,
}

/// Most attempts one upload gets, the first included: with the transient schedule the last is about 69 hours
/// after the first, with the refused one about 80.
pub const UPLOAD_ATTEMPTS: u32 = 16;

/// The delays after the 1st, 2nd, … failed attempt, in units (production: minutes); the last one repeats.
const STEPS: [u32; 5] = [1, 5, 30, 120, 360];
/// Where refusals start in [`STEPS`].
const REFUSED_FROM: usize = 2;

/// The retry schedule of failed uploads. Its unit is a minute; tests shorten it (it is not a config key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadRetry {
    pub unit: Duration,
}

impl Default for UploadRetry {
    fn default() -> Self {
        UploadRetry { unit: Duration::from_secs(60) }
    }
}

impl UploadRetry {
    /// How long to wait after failed attempt number `attempt` (1 for the first) before the next one; `None` when
    /// there is no next one (the last attempt was made, or retrying cannot help).
    pub fn delay(&self, attempt: u32, why: UploadFailure) -> Option<Duration> {
        let from = match why {
            UploadFailure::Transient => 0,
            UploadFailure::Refused => REFUSED_FROM,
            UploadFailure::Hopeless => return None,
        };
        if attempt == 0 || attempt >= UPLOAD_ATTEMPTS {
            return None;
        }
        let step = (from + attempt as usize - 1).min(STEPS.len() - 1);
        Some(self.unit * STEPS[step])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(why: UploadFailure) -> Vec<u64> {
        let retry = UploadRetry::default();
        (1..=UPLOAD_ATTEMPTS + 1).map_while(|a| retry.delay(a, why)).map(|d| d.as_secs() / 60).collect()
    }

    #[test]
    fn transient_failures_back_off_from_a_minute_to_six_hours_then_stop() {
        let m = minutes(UploadFailure::Transient);
        assert_eq!(m[..6], [1, 5, 30, 120, 360, 360]);
        assert_eq!(m.len() as u32, UPLOAD_ATTEMPTS - 1, "one delay between each two attempts");
        assert!(m.iter().all(|&d| d <= 360), "bounded: {m:?}");
        let total: u64 = m.iter().sum();
        assert_eq!(total, 4116, "about 69 hours of retrying");
    }

    #[test]
    fn refusals_start_slower_and_hopeless_failures_are_not_retried() {
        let m = minutes(UploadFailure::Refused);
        assert_eq!(m[..4], [30, 120, 360, 360]);
        assert_eq!(m.len() as u32, UPLOAD_ATTEMPTS - 1);
        assert_eq!(m.iter().sum::<u64>(), 4830, "about 80 hours");
        assert_eq!(UploadRetry::default().delay(1, UploadFailure::Hopeless), None);
        assert_eq!(UploadRetry::default().delay(0, UploadFailure::Transient), None, "attempts count from 1");
        assert_eq!(UploadRetry::default().delay(u32::MAX, UploadFailure::Transient), None);
    }

    #[test]
    fn the_unit_scales_the_whole_schedule() {
        let quick = UploadRetry { unit: Duration::from_millis(100) };
        assert_eq!(quick.delay(1, UploadFailure::Transient), Some(Duration::from_millis(100)));
        assert_eq!(quick.delay(2, UploadFailure::Transient), Some(Duration::from_millis(500)));
        assert_eq!(quick.delay(1, UploadFailure::Refused), Some(Duration::from_secs(3)));
    }
}
