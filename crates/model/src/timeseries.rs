//! Bucketing of profile totals into time series points, as Pyroscope does.
//!
//! For a query `[start, end]` with step `s` (all in milliseconds) data is read
//! from `start - s` to `end`. Buckets are right-closed: a value at time `t`
//! belongs to the point whose timestamp is the first boundary
//! `start - s + k·s ≥ t`. Only non-empty points are emitted.

/// Maps timestamps to point timestamps for one query.
#[derive(Debug, Clone, Copy)]
pub struct Buckets {
    origin: i64,
    step: i64,
    end: i64,
}

impl Buckets {
    /// Buckets for `[start_ms, end_ms]` with `step_ms` (at least 1).
    pub fn new(start_ms: i64, end_ms: i64, step_ms: i64) -> Self {
        let step = step_ms.max(1);
        Buckets {
            origin: start_ms - step,
            step,
            end: end_ms,
        }
    }

    /// The first millisecond of data the query reads.
    pub fn read_start_ms(&self) -> i64 {
        self.origin
    }

    /// The point timestamp (ms) that `t_ms` falls into, if inside the range.
    pub fn point_of(&self, t_ms: i64) -> Option<i64> {
        if t_ms < self.origin || t_ms > self.end {
            return None;
        }
        let k = (t_ms - self.origin + self.step - 1) / self.step;
        Some(self.origin + k * self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_closed_buckets() {
        let b = Buckets::new(1000, 5000, 1000);
        assert_eq!(b.read_start_ms(), 0);
        assert_eq!(b.point_of(0), Some(0));
        assert_eq!(b.point_of(1), Some(1000));
        assert_eq!(b.point_of(1000), Some(1000));
        assert_eq!(b.point_of(1001), Some(2000));
        assert_eq!(b.point_of(5000), Some(5000));
        assert_eq!(b.point_of(5001), None);
        assert_eq!(b.point_of(-1), None);
    }
}
