//! `local = N` in front of json, pickle and postgres: up to N values in this process's memory, so
//! that a hit makes no round trip. The tier is kept coherent as `distributed_memory`
//! is: every clear, partial clear, cascade, tag invalidation and entry write of the
//! function, here or in another process, reaches it through an invalidation bus (Redis pub/sub, or PostgreSQL's
//! `LISTEN`/`NOTIFY`), and
//! a gap in the bus (a lost subscription, a missing message number) drops it whole.
//! While the bus is down the tier is skipped, not the store.
//!
//! A value enters the tier from a hit in the shared store or a stored write, with what is left of
//! its lifetime in the shared store (the values of a function with a tier carry their
//! write time), so that it never outlives the shared entry.

mod local;
pub(crate) mod message;

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use memo_core::{
    coarse_now_ms, now_ms, Backend, CachedFunction, Error, Expire, Fill, KeyRef, Limit, Lookup, Policy,
    RenderTags, StrictKeys,
};
use serde::Serialize;

use crate::keys::wall_ms;
use crate::Memory;
pub(crate) use local::Local;

/// What a process does with an invalidation for one of its functions.
pub(crate) trait Listener: Send + Sync {
    /// Removes every local entry.
    fn invalidate_all(&self);
    /// Removes the local entries that have every `name=hex` segment.
    fn invalidate_matching(&self, segments: &[&str]);
    /// Removes the local entries that carry any of `tags`.
    fn invalidate_tagged(&self, tags: &[String]);
    /// Removes the local entry whose encoded arguments are `hex`.
    fn invalidate_key(&self, hex: &str);
}

/// An invalidation bus as the tiers see it: an epoch that changes on every gap (0 while
/// unsubscribed), and delivery of the messages about a namespace to its listeners.
pub(crate) trait Bus: Send + Sync + std::fmt::Debug {
    fn epoch(&self) -> u64;
    fn listen(&self, ns: &str, listener: Arc<dyn Listener>);
}

/// A value in the tier and the [`now_ms`] past which it is not served (`u64::MAX`: never).
#[derive(Debug, Clone)]
pub(crate) struct Held<V> {
    value: V,
    until: u64,
}

/// How far ahead of the coarse clock an expiry is checked against the precise clock.
const SLACK_MS: u64 = 20;

/// What a lookup that missed the tier hands to the fill: the tier's generation and the
/// bus epoch it saw.
pub(crate) type TierTicket = Option<(u64, u64)>;

/// One function's tier.
#[derive(Debug)]
pub(crate) struct Tier<K, V> {
    local: Arc<Local<K, Held<V>>>,
    bus: &'static dyn Bus,
}

impl<K, V> Tier<K, V>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The tier of `function`, of up to `n` values, listening to the bus for `ns`.
    pub(crate) fn open(
        function: &'static CachedFunction,
        n: usize,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
        ns: &str,
        bus: &'static dyn Bus,
    ) -> Result<Self, Error> {
        let limit = Limit::from_setting(i64::try_from(n).unwrap_or(i64::MAX)).unwrap_or(Limit::Unbounded);
        let memory = Memory::open(function, Policy::new(limit, Expire::Never), strict, None)?;
        let local = Arc::new(Local {
            memory,
            function,
            tags,
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
        });
        bus.listen(ns, Arc::clone(&local) as Arc<dyn Listener>);
        Ok(Tier { local, bus })
    }

    /// The value of `key` in the tier, or (on a miss) what a fill from the store needs.
    #[inline]
    pub(crate) fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<V, TierTicket> {
        let epoch = self.bus.epoch();
        if epoch == 0 {
            return Err(None); // unsubscribed: a clear elsewhere could go unnoticed
        }
        if self.local.epoch.load(SeqCst) != epoch {
            // Values from before a gap may have missed clears: drop them.
            self.local.invalidate();
            self.local.epoch.store(epoch, SeqCst);
        }
        let generation = self.local.generation.load(SeqCst);
        if let Ok(Lookup::Hit(held)) = self.local.memory.get(key) {
            if held.until > coarse_now_ms().saturating_add(SLACK_MS) || held.until > now_ms() {
                return Ok(held.value);
            }
        }
        Err(Some((generation, epoch)))
    }

    /// Keeps `value` for `key`, until `until_wall_ms` by the wall clock (`None`: as long
    /// as the tier keeps it), unless an invalidation or a bus gap came since `ticket`.
    pub(crate) fn fill(&self, key: K, value: V, until_wall_ms: Option<u64>, ticket: TierTicket) {
        let Some((generation, epoch)) = ticket else { return };
        if self.bus.epoch() != epoch {
            return;
        }
        let until = match until_wall_ms {
            None => u64::MAX,
            Some(at) => match at.checked_sub(wall_ms()) {
                Some(left) if left > 0 => now_ms().saturating_add(left),
                _ => return,
            },
        };
        let fill = Fill::new(&self.local.generation, generation, ());
        drop(self.local.memory.put(key, Held { value, until }, fill));
    }

    /// What a fill starting now needs (after a [`remove`](Tier::remove), say).
    pub(crate) fn ticket(&self) -> TierTicket {
        let epoch = self.bus.epoch();
        (epoch != 0 && self.local.epoch.load(SeqCst) == epoch)
            .then(|| (self.local.generation.load(SeqCst), epoch))
    }

    /// Drops every value here (the bus tells the other processes).
    pub(crate) fn invalidate(&self) {
        self.local.invalidate();
    }

    pub(crate) fn invalidate_resolved(&self, resolved: &[(usize, &[u8])]) {
        self.local.invalidate_resolved(resolved);
    }

    pub(crate) fn invalidate_where(&self, doomed: &(dyn Fn(&K) -> bool + Sync)) {
        self.local.invalidate_where(doomed);
    }

    /// Drops the value of `key`, and refuses the fills that began before.
    pub(crate) fn remove(&self, key: &K) {
        self.local.generation.fetch_add(1, SeqCst);
        drop(self.local.memory.remove(key));
    }
}
