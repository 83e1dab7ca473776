//! When to renew and when to retry: pure arithmetic on times, tested without clocks.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// When a certificate valid from `not_before` to `not_after` is renewed: when a third of its lifetime remains
/// (Let's Encrypt's advice for 90-day certificates: renew at 60 days). A certificate with no positive lifetime is
/// due at once.
pub fn renew_at(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime = not_after - not_before;
    if lifetime <= chrono::TimeDelta::zero() {
        return not_before;
    }
    not_after - lifetime / 3
}

/// From when a certificate whose renewal keeps failing is announced as expiring soon: 7 days before it expires, or
/// a sixth of its lifetime before when that is shorter (half the renewal window: a 6-day certificate warns a day
/// before). Renewal starts earlier ([`renew_at`]), so by then it has failed for a while: failures alone are
/// announced as they start; this is the last call before HTTPS breaks.
pub fn warn_expiry_at(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime = not_after - not_before;
    if lifetime <= chrono::TimeDelta::zero() {
        return not_before;
    }
    not_after - (lifetime / 6).min(chrono::TimeDelta::days(7))
}

/// How long to wait before the next attempt after `failures` consecutive failures (1 for the first): `base`,
/// doubling each time, never more than `max`. Growing waits keep a broken domain from burning the CA's rate limits
/// (Let's Encrypt allows 5 failed validations per hostname per hour).
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    base.checked_mul(1u32 << exponent).map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renewal_starts_when_a_third_of_the_lifetime_remains() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let end = start + chrono::TimeDelta::days(90);
        assert_eq!(renew_at(start, end), start + chrono::TimeDelta::days(60));
        let short = start + chrono::TimeDelta::seconds(90);
        assert_eq!(renew_at(start, short), start + chrono::TimeDelta::seconds(60));
        assert_eq!(renew_at(end, start), end, "a nonsensical validity is due at once");
    }

    #[test]
    fn expiry_is_announced_a_week_before_or_a_sixth_of_a_short_lifetime_before() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let days = chrono::TimeDelta::days;
        assert_eq!(warn_expiry_at(start, start + days(90)), start + days(83));
        assert_eq!(warn_expiry_at(start, start + days(6)), start + days(5));
        let minute = start + chrono::TimeDelta::seconds(60);
        assert_eq!(warn_expiry_at(start, minute), start + chrono::TimeDelta::seconds(50));
        assert!(renew_at(start, start + days(90)) < warn_expiry_at(start, start + days(90)));
        assert_eq!(warn_expiry_at(minute, start), minute, "a nonsensical validity warns at once");
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(6 * 3600);
        assert_eq!(backoff(base, max, 0), base);
        assert_eq!(backoff(base, max, 1), base);
        assert_eq!(backoff(base, max, 2), Duration::from_secs(120));
        assert_eq!(backoff(base, max, 5), Duration::from_secs(960));
        assert_eq!(backoff(base, max, 9), Duration::from_secs(256 * 60));
        assert_eq!(backoff(base, max, 10), max, "2^9 minutes is past six hours");
        assert_eq!(backoff(base, max, u32::MAX), max);
    }
}
