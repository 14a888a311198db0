//! `refresh = "early"`: probabilistic early expiration ("XFetch", Vattani, Chierichetti
//! and Lowenstein, 2015). A hit on an entry with `left` ms of lifetime recomputes it in
//! the background when `delta * beta * -ln(u) >= left`, `u` uniform in (0, 1], `delta`
//! the body's measured run time and `beta` 1: the closer the expiry and the slower the
//! body, the likelier. Under load one hit, not a stampede, refreshes a hot entry before
//! it expires, and a cold entry is left to expire.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The body's run time, measured on each computation of a function with
/// `refresh = "early"`: a moving average (each run weighs 1/8), in microseconds.
#[derive(Debug, Default)]
pub struct BodyTime {
    micros: AtomicU64,
}

/// `-ln(u)` never exceeds this for a `u` drawn from 53 bits: entries with more than
/// `delta` times this left are fresh without drawing.
const MAX_DRAW: f64 = 37.0;

impl BodyTime {
    /// No run measured yet.
    pub const fn new() -> BodyTime {
        BodyTime { micros: AtomicU64::new(0) }
    }

    /// Records one run. Concurrent records may lose one another: an average needs no more.
    pub fn record(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.micros.load(Relaxed);
        let new = if old == 0 { sample } else { old - old / 8 + sample / 8 };
        self.micros.store(new.max(1), Relaxed);
    }

    /// The average run time in ms; 0 before the first run.
    pub fn ms(&self) -> f64 {
        self.micros.load(Relaxed) as f64 / 1000.0
    }

    /// Whether a hit on an entry with `left_ms` of lifetime left recomputes it now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memo_core::BodyTime;
    ///
    /// let body = BodyTime::new();
    /// body.record(Duration::from_millis(100));
    /// assert!(!body.due(10_000)); // 100 times the body's time left: never
    /// assert!(body.due(0)); // expiring now: always
    /// let early = (0..10_000).filter(|_| body.due(100)).count();
    /// assert!((3_000..4_400).contains(&early), "{early}"); // P(-ln u >= 1) = 1/e
    /// ```
    pub fn due(&self, left_ms: u64) -> bool {
        let delta = self.ms();
        if delta == 0.0 {
            return false;
        }
        let left = left_ms as f64;
        if left >= delta * MAX_DRAW {
            return false;
        }
        delta * -uniform().ln() >= left
    }
}

impl PartialEq for BodyTime {
    /// The same function's measure (one per function).
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for BodyTime {}

/// A number drawn uniformly from (0, 1]: a xorshift generator per thread, seeded from
/// the thread's stack address and the time.
fn uniform() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            x = (seed ^ (state as *const Cell<u64> as u64).rotate_left(32)) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        ((x >> 11) + 1) as f64 / (1u64 << 53) as f64
    })
}
