//! Memoize a function with one attribute.
//!
//! ```
//! use memo_alchemy::cache;
//!
//! #[cache(limit = 1000, expire = 60, strict = true)]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! fn main() -> Result<(), memo_alchemy::Error> {
//!     assert_eq!(add(1, 2), 3); // computed
//!     assert_eq!(add(1, 2), 3); // served from the cache
//!     assert_eq!(add::cache_stats().hits, 1);
//!     assert_eq!(add::cache_clear_by().a(1).clear()?, 1); // partial clear
//!     assert_eq!(add::cache_clear()?, 0);
//!     Ok(())
//! }
//! ```
//!
//! See the README for the attribute's parameters, the backends and the generated API.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use memo_core::{
    flush_all, flush_all_async, invalidate_tags, invalidate_tags_async, registry, template_matches,
    AsyncEntry, Backend, BackendKind, CacheControl, CacheStats, CachedFunction, Config, ConfigBuilder, Entry,
    Error, Expire, Fill, FunctionCache, FunctionCacheDependency, KeyRef, Limit, Lookup, Policy, PostgresUrl,
    RedisUrl, RenderTags, Selector, StoreFor, StoreStats, StrictKeys,
};
pub use memo_core::{health, BreakerState, FunctionHealth, HealthReport, PoolUse, StoreHealth};
#[doc = include_str!("cache_attribute.md")]
#[doc(inline)]
pub use memo_macros::cache;
pub use memo_macros::{
    cache_impl, distributed_memory_cache, json_cache, memory_cache, pickle_cache, postgres_cache,
};

/// The backends that ship with memo-alchemy: each kind (what `backend = ...` names)
/// and its store.
pub mod backends {
    #[cfg(feature = "redis")]
    pub use memo_backends::{
        DistributedMemory, DistributedMemoryBackend, Json, JsonBackend, Pickle, PickleBackend,
    };
    pub use memo_backends::{Memory, MemoryBackend};
    #[cfg(feature = "postgres")]
    pub use memo_backends::{Postgres, PostgresBackend};
}

/// The postgres backend's operations (feature `postgres`): the cleanup of expired rows
/// and the clears waiting for the database.
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use memo_backends::postgres::{pending_clears, start_cleanup, Cleanup, Ticket};
}

/// Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`):
/// each miss's body and each round trip to a network store are timed into the
/// histograms `memo_alchemy_body_seconds` and `memo_alchemy_store_seconds` (labels
/// `function`, `backend`, and `op` for a round trip), and [`publish`](metrics::publish)
/// copies every function's counters into the recorder before a scrape. See
/// `examples/metrics.rs` for a Prometheus endpoint.
#[cfg(feature = "metrics")]
pub mod metrics {
    pub use memo_core::publish_metrics as publish;
}

/// Stops this process's `distributed_memory` invalidation subscriber, if one runs, and
/// waits for its thread. Call it before exit for a clean shutdown; afterwards
/// `distributed_memory` functions compute directly.
#[cfg(feature = "redis")]
pub fn shutdown() {
    memo_backends::redis::shutdown();
}

/// How many clears of this process wait for Redis: each clear that failed while Redis
/// was down is retried in the background until Redis takes it, and until then no value
/// of its function is served from Redis or `distributed_memory` in this process. A
/// process that exits with clears pending loses them.
#[cfg(feature = "redis")]
pub fn pending_clears() -> usize {
    memo_backends::redis::pending_clears()
}

/// The README's examples, compiled as doctests; its Postgres example needs the
/// `postgres` feature (`./scripts/test` tests with every feature).
#[cfg(all(doctest, feature = "postgres"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
