//! The runtime of [memo-alchemy](https://docs.rs/memo-alchemy): keys, the [`Backend`]
//! trait, function handles, the dependency graph, configuration, statistics and errors.
//!
//! Users depend on `memo-alchemy`, which re-exports what is public here.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod backend;
mod clock;
mod config;
mod early;
mod entry;
mod error;
mod flight;
mod function;
mod graph;
mod handle;
mod health;
mod key;
mod mode;
mod observe;
mod policy;
mod refresh;
mod stats;
mod status;
mod tags;

pub use backend::{Backend, BackendKind, Fill, Lead, Lookup, StoreFor, StoreStats};
pub use clock::{coarse_now_ms, now_ms};
pub use config::{
    Config, ConfigBuilder, PostgresUrl, RedisUrl, DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_FAILURES,
    DEFAULT_EXPIRE, DEFAULT_KEY_PREFIX, DEFAULT_LIMIT, DEFAULT_POSTGRES_POOL_SIZE, DEFAULT_POSTGRES_SCHEMA,
    DEFAULT_POSTGRES_TIMEOUT, DEFAULT_POSTGRES_URL, DEFAULT_REDIS_TIMEOUT, DEFAULT_REDIS_URL,
};
pub use early::BodyTime;
pub use entry::{AsyncEntry, Entry};
pub use error::Error;
pub use function::{CacheControl, CachedFunction};
pub use graph::{
    clear_private_downstream, flush_all, flush_all_async, plan, registry, FunctionCacheDependency, Step,
};
pub use handle::FunctionCache;
pub use health::Health;
pub use key::{Field, KeyRef, Selector, StrictKeys};
#[cfg(feature = "metrics")]
pub use observe::publish_metrics;
pub use policy::{jitter_from_setting, Expire, Freshness, Limit, Policy, MAX_EXPIRE_JITTER, SETTING_RULE};
pub use stats::CacheStats;
pub use status::{health, BreakerState, FunctionHealth, HealthReport, PoolUse, StoreHealth};
pub use tags::{
    invalidate_private_tags, invalidate_tags, invalidate_tags_async, may_carry, template_matches, RenderTags,
};

/// What generated code and the bundled stores use, and users need not: it changes
/// without notice.
#[doc(hidden)]
pub mod plumbing {
    pub use crate::function::Decl;
    pub use crate::graph::Registration;
    pub use crate::handle::Miss;
    pub use crate::key::StrictArgs;
    pub use crate::mode::{Fallible, Mode, Plain};
    pub use crate::refresh::block_in_background;
    pub use crate::stats::Stripes;
}

/// A boxed, `Send` future, as [`CacheControl`]'s async methods return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
