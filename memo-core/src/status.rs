//! [`health`]: the state of every store the program's cached functions use, and each
//! function's hit rate, for a health endpoint or an operator.

use std::fmt;
use std::time::Duration;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls use the store.
    Closed,
    /// Calls skip the store for this long more (then one probes).
    Open(Duration),
}

/// How a store's connection pool is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open and idle.
    pub idle: usize,
    /// Connections in use now, where known.
    pub in_use: Option<usize>,
    /// The most the pool opens.
    pub max: usize,
}

/// The state of one store (a Redis server or cluster, a database, an invalidation
/// subscription), as a backend kind reports it through
/// [`BackendKind::health`](crate::BackendKind::health).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreHealth {
    /// The backend kind: `json`, `postgres`, ...
    pub backend: &'static str,
    /// The store as the log names it (passwords masked).
    pub store: String,
    /// Whether a probe just now was answered.
    pub reachable: bool,
    /// How long the probe took, when it was answered.
    pub latency: Option<Duration>,
    /// Why it was not answered.
    pub error: Option<String>,
    /// The circuit breaker in front of the store.
    pub breaker: BreakerState,
    /// The connection pool, where there is one.
    pub pool: Option<PoolUse>,
    /// `distributed_memory`: whether this process hears other processes' clears now
    /// (while not, it serves nothing from memory).
    pub subscribed: Option<bool>,
}

/// One function's counters, as [`CachedFunction::stats`](crate::CachedFunction::stats) gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionHealth {
    /// Its path, `crate::module::name`.
    pub path: String,
    /// Its backend.
    pub backend: &'static str,
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that ran the body.
    pub misses: u64,
    /// Store errors (each call computed directly).
    pub errors: u64,
    /// `hits / (hits + misses)`; `None` before the first call.
    pub hit_rate: Option<f64>,
}

/// What [`health`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// Each store some function of the program uses (none for `memory` alone).
    pub stores: Vec<StoreHealth>,
    /// Each function this process has called.
    pub functions: Vec<FunctionHealth>,
}

impl HealthReport {
    /// Whether every store answered.
    pub fn is_healthy(&self) -> bool {
        self.stores.iter().all(|s| s.reachable && s.subscribed != Some(false))
    }
}

/// Probes every store that a registered cached function uses (one round trip each,
/// within the store's timeout, even while its breaker is open: a success closes it)
/// and gathers each called function's hit rate.
///
/// ```
/// #[memo_alchemy::cache]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     square(3);
///     square(3);
///     let report = memo_alchemy::health();
///     let f = report.functions.iter().find(|f| f.path.ends_with("::square")).unwrap();
///     assert_eq!((f.hits, f.misses, f.hit_rate), (1, 1, Some(0.5)));
///     println!("{report}");
/// }
/// ```
pub fn health() -> HealthReport {
    let mut kinds: Vec<&'static dyn crate::BackendKind> = Vec::new();
    let mut functions = Vec::new();
    for function in crate::registry() {
        let kind = function.backend_kind();
        if !kinds.iter().any(|k| k.name() == kind.name()) {
            kinds.push(kind);
        }
        if function.controls().is_empty() {
            continue;
        }
        let stats = function.stats();
        let calls = stats.hits + stats.misses;
        #[allow(clippy::cast_precision_loss)] // a rate: precision to spare
        let hit_rate = (calls > 0).then(|| stats.hits as f64 / calls as f64);
        functions.push(FunctionHealth {
            path: function.path().to_owned(),
            backend: function.backend(),
            hits: stats.hits,
            misses: stats.misses,
            errors: stats.errors,
            hit_rate,
        });
    }
    let stores = kinds.iter().filter_map(|k| k.health()).collect();
    HealthReport { stores, functions }
}

impl fmt::Display for HealthReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.stores {
            let state = match (s.reachable, s.latency) {
                (true, Some(latency)) => format!("up, {:.2} ms", latency.as_secs_f64() * 1000.0),
                (true, None) => "up".to_owned(),
                (false, _) => format!("DOWN ({})", s.error.as_deref().unwrap_or("no answer")),
            };
            write!(f, "{:<20} {} — {state}", s.backend, s.store)?;
            if let BreakerState::Open(left) = s.breaker {
                write!(f, ", breaker open {} ms more", left.as_millis())?;
            }
            if let Some(pool) = s.pool {
                write!(f, ", pool {} idle of {}", pool.idle, pool.max)?;
            }
            if let Some(subscribed) = s.subscribed {
                write!(f, ", {}", if subscribed { "subscribed" } else { "NOT subscribed" })?;
            }
            writeln!(f)?;
        }
        for func in &self.functions {
            let rate = func.hit_rate.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
            writeln!(
                f,
                "{:<40} {:<18} hits {:>8}  misses {:>8}  errors {:>5}  hit rate {rate}",
                func.path, func.backend, func.hits, func.misses, func.errors
            )?;
        }
        Ok(())
    }
}
