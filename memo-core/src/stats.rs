//! Per-function counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of one cached function's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that did not find a value (including callers that waited for
    /// another caller's computation).
    pub misses: u64,
    /// Entries removed to keep the function within its `limit`.
    pub evictions: u64,
    /// Entries removed because they outlived `expire`.
    pub expirations: u64,
    /// Store failures that the function survived by computing directly.
    pub errors: u64,
    /// Entries currently stored, where the backend knows it.
    pub len: Option<usize>,
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    /// Counts one hit.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }
    /// Counts one miss.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }
    /// Counts `n` evictions.
    pub fn evicted(&self, n: u64) {
        self.evictions.fetch_add(n, Relaxed);
    }
    /// Counts `n` expirations.
    pub fn expired(&self, n: u64) {
        self.expirations.fetch_add(n, Relaxed);
    }
    /// Counts one store error.
    pub fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }
    /// Reads the counters, with the backend's length.
    pub fn snapshot(&self, len: Option<usize>) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
            errors: self.errors.load(Relaxed),
            len,
        }
    }
}
