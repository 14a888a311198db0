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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use memo_core::{
    coarse_now_ms, now_ms, Backend, CachedFunction, Error, Expire, Fill, Freshness, KeyRef, Limit, Lookup,
    Policy, RenderTags, StrictKeys,
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
    /// When the shared store wrote it (wall-clock ms), and its key's hash: for `refresh`
    /// and `stale`, which judge a value by its age.
    written: u64,
    hash: u64,
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
    /// The function's policy: each value's lifetime, and whether a hit must be judged
    /// for `refresh` and `stale`.
    policy: Policy,
    /// Clears of this function running in this process: no fill while one runs.
    clearing: AtomicUsize,
}

/// A clear of the function in this process, from before it empties the tier to after
/// the shared store changed: meanwhile nothing fills the tier, and a fill whose lookup
/// began before the end is refused, so that no value read from the store before the
/// clear reached it re-enters the tier after.
pub(crate) struct Clearing<'a> {
    clearing: &'a AtomicUsize,
    generation: &'a AtomicU64,
}

impl Drop for Clearing<'_> {
    fn drop(&mut self) {
        self.generation.fetch_add(1, SeqCst);
        self.clearing.fetch_sub(1, SeqCst);
    }
}

impl<K, V> Tier<K, V>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The tier of `function` (whose policy is `policy`), of up to `n` values,
    /// listening to the bus for `ns`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        function: &'static CachedFunction,
        n: usize,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
        ns: &str,
        bus: &'static dyn Bus,
    ) -> Result<Self, Error> {
        let limit = Limit::from_setting(i64::try_from(n).unwrap_or(i64::MAX)).unwrap_or(Limit::Unbounded);
        let memory = Memory::open(function, Policy::new(limit, Expire::Never), strict, None)?;
        let local = Local::listening(memory, function, tags, ns, bus);
        Ok(Tier { local, bus, policy, clearing: AtomicUsize::new(0) })
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
            let live = held.until > coarse_now_ms().saturating_add(SLACK_MS) || held.until > now_ms();
            // With `refresh` or `stale`, a value that is not fresh any more is judged by
            // the store (which hands out the refresh, or the stale fallback).
            let fresh = !self.policy.tracks_freshness()
                || self.policy.freshness(held.written, wall_ms(), held.hash) == Freshness::Fresh;
            if live && fresh {
                return Ok(held.value);
            }
        }
        Err(Some((generation, epoch)))
    }

    /// After a lookup in the shared store: a hit there, written at `written_wall_ms`
    /// (when the value says), enters the tier for what is left of its lifetime.
    pub(crate) fn keep<T>(
        &self,
        found: &Lookup<V, T>,
        key: K,
        written_wall_ms: Option<u64>,
        hash: u64,
        ticket: TierTicket,
    ) {
        if let (Lookup::Hit(v), Some(written)) = (found, written_wall_ms) {
            self.fill(key, v.clone(), written, hash, ticket);
        }
    }

    /// After a write stored `value`: it enters the tier. A direct write (`cache_entry`)
    /// only drops the key again, and the next read fills it from the store: a value read
    /// before the write landed cannot stay, and neither can the written one when a clear
    /// (here, or announced by the bus) came between the store's answer and this call,
    /// which no ticket taken now could see.
    pub(crate) fn stored(&self, key: K, value: V, hash: u64, ticket: TierTicket, direct: bool) {
        if direct {
            self.remove(&key);
        } else {
            self.fill(key, value, wall_ms(), hash, ticket);
        }
    }

    /// Before a direct write of `key`: its value here goes and fills that began before
    /// are refused; the tier's ticket for the write.
    pub(crate) fn unserve(&self, key: &K) -> TierTicket {
        self.remove(key);
        self.ticket()
    }

    /// Starts a clear of the function in this process (see [`Clearing`]); the caller
    /// empties what it covers here, then changes the shared store, then drops it.
    pub(crate) fn clearing(&self) -> Clearing<'_> {
        self.clearing.fetch_add(1, SeqCst);
        self.local.generation.fetch_add(1, SeqCst);
        Clearing { clearing: &self.clearing, generation: &self.local.generation }
    }

    /// Keeps `value` for `key`, written at `written` (wall-clock ms), for what is left
    /// of its lifetime, unless an invalidation, a clear here or a bus gap came since
    /// `ticket`.
    fn fill(&self, key: K, value: V, written: u64, hash: u64, ticket: TierTicket) {
        let Some((generation, epoch)) = ticket else { return };
        if self.bus.epoch() != epoch || self.clearing.load(SeqCst) != 0 {
            return;
        }
        let until = match self.policy.lifetime_ms(hash).map(|ms| written.saturating_add(ms)) {
            None => u64::MAX,
            Some(at) => match at.checked_sub(wall_ms()) {
                Some(left) if left > 0 => now_ms().saturating_add(left),
                _ => return,
            },
        };
        let fill = Fill::new(&self.local.generation, generation, ());
        drop(self.local.memory.put(key, Held { value, until, written, hash }, fill));
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
