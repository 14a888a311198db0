//! The up-or-down state of one store, and the few log lines an outage is worth.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::clock::now_ms;

/// Whether a store (a Redis server, an invalidation subscription) is answering, and
/// its log: one `WARN` when it goes down, at most one a second while it stays down,
/// one `INFO` when it is back. Backends call [`failed`](Health::failed) on every
/// failure and [`succeeded`](Health::succeeded) on every success; the cost of the
/// latter while the store is up is one relaxed load.
///
/// ```
/// use memo_core::Health;
///
/// let redis = Health::new("Redis at redis://cache:6379/0");
/// assert!(!redis.is_down());
/// redis.failed(&"Connection refused"); // logs: down
/// redis.failed(&"Connection refused"); // within a second: counted, not logged
/// assert!(redis.is_down());
/// redis.succeeded(); // logs: back, with the failures counted
/// assert!(!redis.is_down());
/// ```
#[derive(Debug)]
pub struct Health {
    store: String,
    /// When the store went down, in ms since the epoch; 0 while it is up.
    down_since_ms: AtomicU64,
    /// Failures since it went down.
    failures: AtomicU64,
    last_log_ms: AtomicU64,
}

/// The least time between two "still down" lines of one store.
const LOG_INTERVAL_MS: u64 = 1000;

impl Health {
    /// The state of `store`, as it is named in the log; up at first.
    pub fn new(store: impl Into<String>) -> Health {
        Health {
            store: store.into(),
            down_since_ms: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_log_ms: AtomicU64::new(0),
        }
    }

    /// The store, as the log names it.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Whether the last call saw a failure.
    pub fn is_down(&self) -> bool {
        self.down_since_ms.load(Relaxed) != 0
    }

    /// Records a failure: the first of an outage is logged at once, the others at most
    /// once a second.
    pub fn failed(&self, error: &dyn Display) {
        let now = now_ms().max(1);
        let failures = self.failures.fetch_add(1, Relaxed) + 1;
        if self.down_since_ms.compare_exchange(0, now, Relaxed, Relaxed).is_ok() {
            self.last_log_ms.store(now, Relaxed);
            tracing::warn!(store = %self.store, %error, "memo-alchemy: store down; computing directly until it is back");
            return;
        }
        let last = self.last_log_ms.load(Relaxed);
        if now.saturating_sub(last) >= LOG_INTERVAL_MS
            && self.last_log_ms.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
        {
            let down_ms = now.saturating_sub(self.down_since_ms.load(Relaxed));
            tracing::warn!(store = %self.store, %error, failures, down_ms, "memo-alchemy: store still down");
        }
    }

    /// Records a success: logs the recovery if the store was down.
    #[inline]
    pub fn succeeded(&self) {
        if self.down_since_ms.load(Relaxed) != 0 {
            self.recovered();
        }
    }

    #[cold]
    fn recovered(&self) {
        let since = self.down_since_ms.swap(0, Relaxed);
        if since != 0 {
            let failures = self.failures.swap(0, Relaxed);
            let down_ms = now_ms().saturating_sub(since);
            tracing::info!(store = %self.store, failures, down_ms, "memo-alchemy: store back");
        }
    }
}
