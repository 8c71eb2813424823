//! Per-tenant admission: ingestion rate (token bucket) and active series.
//!
//! Both are local to one distributor. The rate is shared: each distributor
//! admits `ingestion_rate_mb / live distributors`, as Pyroscope's "global"
//! strategy does, so a tenant's total stays near its limit however the load
//! balancer spreads it. The series limit counts the distinct series this
//! distributor saw in the last hour; agents spread their pushes over the
//! distributors, so each sees (nearly) all of a tenant's series and the
//! local count is a close lower bound of the global one — the limit is never
//! applied too early.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a series counts as active after its last push.
pub const SERIES_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets of bytes, one per tenant.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Admits `bytes` for `tenant` at `rate` bytes/s with `burst` bytes of
    /// headroom, or says how long to wait. A rate of 0 admits everything. A
    /// request larger than the burst is admitted when the bucket is full and
    /// leaves it in debt, so that large profiles are slowed down, not
    /// refused forever.
    pub fn admit(
        &self,
        tenant: &str,
        bytes: usize,
        rate: f64,
        burst: f64,
        now: Instant,
    ) -> Result<(), Duration> {
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = burst.max(1.0);
        let bytes = bytes as f64;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= bytes || (b.tokens >= burst && bytes > burst) {
            b.tokens -= bytes;
            return Ok(());
        }
        let missing = bytes.min(burst) - b.tokens;
        Err(Duration::from_secs_f64((missing / rate).max(0.001)))
    }
}

#[derive(Debug)]
struct TenantSeries {
    seen: HashMap<u64, Instant>,
    swept: Instant,
}

/// The series each tenant wrote to recently.
#[derive(Debug, Default)]
pub struct SeriesLimiter {
    tenants: Mutex<HashMap<String, TenantSeries>>,
}

impl SeriesLimiter {
    /// Admits writes to `series` (fingerprints) for `tenant` if the tenant
    /// then has at most `limit` active series (0 = no limit); otherwise
    /// admits none of them and returns the current count.
    pub fn admit(
        &self,
        tenant: &str,
        series: &[u64],
        limit: usize,
        now: Instant,
    ) -> Result<(), usize> {
        if limit == 0 {
            return Ok(());
        }
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| TenantSeries {
                seen: HashMap::new(),
                swept: now,
            });
        if now.saturating_duration_since(t.swept) >= Duration::from_secs(60) {
            t.seen
                .retain(|_, last| now.saturating_duration_since(*last) < SERIES_WINDOW);
            t.swept = now;
        }
        let mut new: Vec<u64> = series
            .iter()
            .copied()
            .filter(|fp| {
                t.seen
                    .get(fp)
                    .is_none_or(|last| now.saturating_duration_since(*last) >= SERIES_WINDOW)
            })
            .collect();
        new.sort_unstable();
        new.dedup();
        if !new.is_empty() {
            // Counted only when the push brings new series: known series,
            // the common case, cost no walk over the tenant's series.
            let active = t
                .seen
                .values()
                .filter(|last| now.saturating_duration_since(**last) < SERIES_WINDOW)
                .count();
            if active + new.len() > limit {
                return Err(active);
            }
        }
        for fp in series {
            t.seen.insert(*fp, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_admits_rate_and_burst_and_says_when_to_retry() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        // 1000 B/s with a 500 B burst: 500 B at once, then 1000 B per second.
        assert!(l.admit("a", 500, 1000.0, 500.0, t0).is_ok());
        let wait = l.admit("a", 300, 1000.0, 500.0, t0).unwrap_err();
        assert!((0.29..=0.31).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(
            l.admit("a", 300, 1000.0, 500.0, t0 + Duration::from_millis(300))
                .is_ok()
        );
        // Other tenants have their own bucket.
        assert!(l.admit("b", 500, 1000.0, 500.0, t0).is_ok());
        // Over 10 s at most rate × 10 s + burst gets through.
        let mut admitted = 0usize;
        for i in 0..1000 {
            let now = t0 + Duration::from_millis(1000 + i * 10);
            if l.admit("c", 100, 1000.0, 500.0, now).is_ok() {
                admitted += 100;
            }
        }
        assert!((10_000..=10_500).contains(&admitted), "{admitted}");
        // Rate 0: no limit.
        assert!(l.admit("d", usize::MAX, 0.0, 0.0, t0).is_ok());
    }

    #[test]
    fn a_request_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_debt() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        assert!(l.admit("a", 2000, 1000.0, 500.0, t0).is_ok());
        // 1500 B of debt plus 500 B wanted: 2 s.
        let wait = l.admit("a", 2000, 1000.0, 500.0, t0).unwrap_err();
        assert!((1.99..=2.01).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(
            l.admit("a", 2000, 1000.0, 500.0, t0 + Duration::from_secs(2))
                .is_ok()
        );
    }

    #[test]
    fn series_beyond_the_limit_are_refused_until_old_ones_expire() {
        let l = SeriesLimiter::default();
        let t0 = Instant::now();
        assert!(l.admit("a", &[1, 2, 3], 3, t0).is_ok());
        assert!(l.admit("a", &[1, 2, 3], 3, t0).is_ok(), "known series pass");
        assert_eq!(l.admit("a", &[3, 4], 3, t0), Err(3));
        assert!(l.admit("b", &[4], 3, t0).is_ok(), "tenants are separate");
        // Series 1 and 2 stop; 3 keeps writing; after the window 4 and 5 fit.
        let later = t0 + SERIES_WINDOW - Duration::from_secs(1);
        assert!(l.admit("a", &[3], 3, later).is_ok());
        let after = t0 + SERIES_WINDOW + Duration::from_secs(61);
        assert!(l.admit("a", &[4, 5], 3, after).is_ok());
        assert_eq!(l.admit("a", &[6], 3, after), Err(3));
        assert!(l.admit("a", &[6, 7], 0, after).is_ok(), "0 = no limit");
    }
}
