//! Durable invalidation for Redis ([`crate::retries`]): a clear of json or pickle
//! entries, or a bus message of distributed_memory, that could not reach Redis is
//! returned as an error and retried in the background; until it goes through this
//! process serves no value of that function from Redis (json, pickle) or from its local
//! memory (distributed_memory).

use redis::RedisResult;

use super::bus::Bus;
use super::conn::{block, Io, Redis};
use super::namespace::Namespace;
use super::ops;
use crate::retries::{Retries, Store};
pub(crate) use crate::retries::{Target, What};

/// A clear's scope: a function's namespace (or the tags pseudo-namespace) and target.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    ns: Namespace,
    target: Target,
}

impl PartialEq for Scope {
    fn eq(&self, other: &Scope) -> bool {
        self.ns.base() == other.ns.base() && self.target == other.target
    }
}

static RETRIES: Retries<Scope> = Retries::new("memo-alchemy-retry");

/// Redis, as the retry queue reaches it.
struct Retried;

impl Store<Scope> for Retried {
    /// The retries are the breaker's probes: they go through while it is open.
    fn apply(&self, scope: &Scope, what: &What) -> Result<usize, String> {
        let applied = Redis::global().run_retry(|io| block(apply(io, &scope.ns, scope.target, what)));
        if applied.is_ok() && scope.target.reaches_store() && *what == What::All {
            super::drain::poke();
        }
        applied
    }
    fn is_down(&self) -> bool {
        Redis::global().is_down()
    }
    fn name(&self) -> &'static str {
        "Redis"
    }
}

/// Whether a pending clear covers the function of `ns` (its namespace, or a tag
/// invalidation one of its templates can match): then it must not be served.
#[inline]
pub(crate) fn blocks(ns: &Namespace) -> bool {
    RETRIES.blocks(|scope, what| match what {
        What::Tags(tags) => ns.may_carry(tags),
        _ => scope.ns.base() == ns.base(),
    })
}

/// How many clears of this process wait for Redis.
pub fn pending() -> usize {
    RETRIES.pending()
}

/// Applies a clear now; on failure, queues it for retries and says so in the error.
pub(crate) fn invalidate(ns: &Namespace, target: Target, what: What) -> Result<usize, String> {
    let scope = Scope { ns: ns.clone(), target };
    let all = what == What::All;
    let result = RETRIES.run(&Retried, &scope, what.clone(), || {
        Redis::global().run(|io| block(apply(io, ns, target, &what)))
    });
    drained(target, all, &result);
    result
}

/// [`invalidate`] for `async` callers.
pub(crate) async fn invalidate_async(ns: &Namespace, target: Target, what: What) -> Result<usize, String> {
    let scope = Scope { ns: ns.clone(), target };
    let all = what == What::All;
    let (owned_ns, owned_what) = (ns.clone(), what.clone());
    let result = RETRIES
        .run_async(&Retried, &scope, what, || {
            Redis::global()
                .run_async(move |mut io| async move { apply(&mut io, &owned_ns, target, &owned_what).await })
        })
        .await;
    drained(target, all, &result);
    result
}

/// A full clear of stored entries leaves a renamed index for the drain.
fn drained(target: Target, all: bool, result: &Result<usize, String>) {
    if result.is_ok() && all && target.reaches_store() {
        super::drain::poke();
    }
}

async fn apply(io: &mut impl Io, ns: &Namespace, target: Target, what: &What) -> RedisResult<usize> {
    match target {
        Target::Store => apply_store(io, ns, what).await,
        Target::Bus => publish(io, ns, what).await.map(|()| 0),
        Target::StoreAndBus => {
            let removed = apply_store(io, ns, what).await?;
            publish(io, ns, what).await?;
            Ok(removed)
        }
    }
}

async fn apply_store(io: &mut impl Io, ns: &Namespace, what: &What) -> RedisResult<usize> {
    match what {
        What::All => ops::clear(io, ns).await,
        What::Matching(wanted) => ops::clear_matching(io, ns, wanted).await,
        What::Tags(tags) => ops::invalidate_tags(io, ns, tags).await,
        What::Key(key) => match ns.entry_of_key(key) {
            Some(entry) => ops::remove(io, ns, &entry).await.map(usize::from),
            None => Ok(0),
        },
    }
}

/// Tells every process: `F` all of `ns`'s entries, `P` those with every segment, `T`
/// those carrying a tag, `K` one entry (a `local` tier, which cannot tell a stored
/// entry's key from its own, drops all of the function's).
async fn publish(io: &mut impl Io, ns: &Namespace, what: &What) -> RedisResult<()> {
    let bus = Bus::global();
    let message = bus.message(ns.base(), what);
    ops::publish(io, bus.sequence(), bus.channel(), &message).await
}
