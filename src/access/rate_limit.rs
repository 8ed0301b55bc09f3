//! `rate_limit` of the web configuration: one token bucket for all
//! requests, as exporter-toolkit's (`golang.org/x/time/rate`). A request
//! that finds the bucket empty gets 429 before anything else is done for
//! it, basic auth included, so a flood costs almost nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::access::config::RateLimit;

pub(crate) struct RateLimiter {
    interval: Duration,
    burst: f64,
    /// Tokens left, and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket: `burst` requests may come at once.
    pub(crate) fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            interval: limit.interval,
            burst: f64::from(limit.burst),
            state: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(st.1);
        let refill = elapsed.as_secs_f64() / self.interval.as_secs_f64();
        st.0 = (st.0 + refill).min(self.burst);
        st.1 = now.max(st.1);
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let limiter = RateLimiter::new(RateLimit {
            burst: 3,
            interval: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow_at(t0)));
        assert!(!limiter.allow_at(t0));
        assert!(!limiter.allow_at(t0 + Duration::from_secs(9)));
        assert!(limiter.allow_at(t0 + Duration::from_secs(10)));
        assert!(!limiter.allow_at(t0 + Duration::from_secs(10)));
        // A long quiet spell refills the bucket to `burst`, not beyond.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| limiter.allow_at(later)));
        assert!(!limiter.allow_at(later));
    }
}
