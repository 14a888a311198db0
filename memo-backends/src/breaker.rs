//! The circuit breaker of a shared store: after repeated failures, calls skip the
//! store for a cool-down instead of each waiting for the timeout.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use memo_core::{now_ms, Config};

/// Skips a store (Redis, PostgreSQL) for a cool-down after `threshold` consecutive failures. When the
/// cool-down is over, one call (the probe) goes through while the others still skip
/// the store: its success closes the breaker, its failure starts another cool-down. So
/// the store is back in use at most one cool-down after it recovers.
pub(crate) struct Breaker {
    failures: AtomicU32,
    /// 0 while closed; else when the next probe may go through.
    open_until_ms: AtomicU64,
    threshold: u32,
    cooldown_ms: u64,
}

impl Breaker {
    /// A closed breaker with the configured threshold and cool-down.
    pub(crate) fn new(config: &Config) -> Breaker {
        Breaker {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            threshold: config.breaker_failures(),
            cooldown_ms: u64::try_from(config.breaker_cooldown().as_millis()).unwrap_or(u64::MAX),
        }
    }

    pub(crate) fn admit(&self) -> Result<(), String> {
        let until = self.open_until_ms.load(Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = now_ms();
        if now < until {
            return Err(format!("circuit breaker open for {} ms more", until - now));
        }
        // Cool-down over: this call probes, unless another caller claimed the probe.
        let next = now.saturating_add(self.cooldown_ms);
        match self.open_until_ms.compare_exchange(until, next, Relaxed, Relaxed) {
            Ok(_) => Ok(()),
            Err(_) => Err("circuit breaker open; another call is probing the store".to_owned()),
        }
    }

    /// Whether calls use the store now.
    pub(crate) fn state(&self) -> memo_core::BreakerState {
        let until = self.open_until_ms.load(Relaxed);
        match until.checked_sub(now_ms()) {
            Some(left) if until != 0 && left > 0 => {
                memo_core::BreakerState::Open(std::time::Duration::from_millis(left))
            }
            _ => memo_core::BreakerState::Closed,
        }
    }

    pub(crate) fn success(&self) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.open_until_ms.load(Relaxed) != 0 {
            self.open_until_ms.store(0, Relaxed);
        }
    }

    pub(crate) fn failure(&self) {
        let failures = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        if failures >= self.threshold {
            self.open_until_ms.store(now_ms().saturating_add(self.cooldown_ms).max(1), Relaxed);
        }
    }
}
