//! `distributed_memory`: values in this process's memory, invalidation shared by every
//! process through Redis pub/sub. A hit makes no network round trip.

use std::hash::Hash;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use memo_core::{
    Backend, BackendKind, BoxFuture, CachedFunction, Config, Error, Fill, KeyRef, Lookup, Policy, RenderTags,
    Selector, StoreFor, StoreStats, StrictKeys,
};
use serde::Serialize;

use super::bus::Bus;
use super::conn::Redis;
use super::namespace::{hex, selected, Namespace};
use super::pending::{self, invalidate, invalidate_async, Target, What};
use crate::tier::Local;
use crate::Memory;

/// Values in local memory (LRU, `limit`, `expire` as for `memory`); a clear in any
/// process reaches every process. Arguments must be `Serialize` so that partial clears
/// compare the same encodings everywhere; the value only needs `Clone`.
#[derive(Debug)]
pub struct DistributedMemory<K, V> {
    local: Arc<Local<K, V>>,
    ns: Namespace,
    bus: &'static Bus,
    redis: &'static Redis,
}

/// What a miss remembers: the generation and the bus epoch it saw.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    generation: u64,
    epoch: u64,
}

impl<K, V> DistributedMemory<K, V> {
    fn fail(&self, message: String) -> Error {
        self.redis.error(DistributedMemoryBackend.name(), self.local.function.path(), message)
    }

    /// The entry of `key`, as the other processes find it: its encoded arguments.
    fn one(&self, key: &K) -> Result<What, Error>
    where
        K: Serialize,
    {
        let bytes =
            postcard::to_stdvec(key).map_err(|e| self.fail(format!("cannot encode the arguments: {e}")))?;
        Ok(What::Key(hex(&bytes)))
    }

    fn matching(&self, resolved: &[(usize, &[u8])]) -> What {
        What::Matching(selected(self.local.function, resolved))
    }
}

impl<K, V> Backend<K, V> for DistributedMemory<K, V>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Ticket = Ticket;

    fn open(
        function: &'static CachedFunction,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
    ) -> Result<Self, Error> {
        let memory = Memory::open(function, policy, strict, None)?;
        let ns = Namespace::of(function, Config::global());
        let bus = Bus::global();
        let local = Local::listening(memory, function, tags, ns.base(), bus);
        Ok(DistributedMemory { local, ns, bus, redis: Redis::global() })
    }

    #[inline]
    fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<Lookup<V, Ticket>, Error> {
        let epoch = self.bus.epoch();
        if epoch == 0 {
            // Unsubscribed: a clear elsewhere could go unnoticed, so serve nothing. An
            // outage is an error (counted); the first moments of the process are not.
            if self.bus.is_down() {
                return Err(self.fail("the invalidation subscription is down".into()));
            }
            return Ok(Lookup::Miss(Ticket { generation: 0, epoch: 0 }));
        }
        if pending::blocks(&self.ns) {
            // This process's clear has not reached the others yet.
            return Err(self.fail("a clear of this function is waiting for Redis".into()));
        }
        if self.local.epoch.load(SeqCst) != epoch {
            // Values from before a subscription gap may have missed clears: drop them.
            self.local.invalidate();
            self.local.epoch.store(epoch, SeqCst);
        }
        let generation = self.local.generation.load(SeqCst);
        let ticket = Ticket { generation, epoch };
        Ok(match self.local.memory.get(key)? {
            Lookup::Hit(v) => Lookup::Hit(v),
            Lookup::Miss(()) => Lookup::Miss(ticket),
            Lookup::Stale(v, ()) => Lookup::Stale(v, ticket),
            Lookup::Refresh(v, ()) => Lookup::Refresh(v, ticket),
        })
    }

    fn put(&self, key: K, value: V, fill: Fill<'_, Ticket>) -> Result<(), Error> {
        let ticket = fill.ticket;
        if ticket.epoch == 0 || ticket.epoch != self.bus.epoch() || !fill.is_current() {
            return Ok(());
        }
        self.local.memory.put(key, value, Fill::new(&self.local.generation, ticket.generation, ()))
    }

    fn clear(&self) -> Result<usize, Error> {
        let removed = self.local.invalidate();
        invalidate(&self.ns, Target::Bus, What::All).map_err(|m| self.fail(m))?;
        Ok(removed)
    }

    fn clear_by(&self, resolved: &[(usize, &[u8])]) -> Result<usize, Error> {
        let removed = self.local.invalidate_resolved(resolved);
        invalidate(&self.ns, Target::Bus, self.matching(resolved)).map_err(|m| self.fail(m))?;
        Ok(removed)
    }

    fn stats(&self) -> StoreStats {
        self.local.memory.stats()
    }

    /// Local fills that began before are refused; the other processes drop their copy.
    fn reserve(&self, key: &K) -> Result<Ticket, Error> {
        self.local.generation.fetch_add(1, SeqCst);
        let ticket = Ticket { generation: self.local.generation.load(SeqCst), epoch: self.bus.epoch() };
        invalidate(&self.ns, Target::Bus, self.one(key)?).map_err(|m| self.fail(m))?;
        Ok(ticket)
    }

    async fn reserve_async<'a>(&'a self, key: &'a K) -> Result<Ticket, Error> {
        self.local.generation.fetch_add(1, SeqCst);
        let ticket = Ticket { generation: self.local.generation.load(SeqCst), epoch: self.bus.epoch() };
        invalidate_async(&self.ns, Target::Bus, self.one(key)?).await.map_err(|m| self.fail(m))?;
        Ok(ticket)
    }

    /// Here, then in every other process.
    fn remove(&self, key: &K) -> Result<bool, Error> {
        self.local.generation.fetch_add(1, SeqCst);
        let removed = self.local.memory.remove(key)?;
        invalidate(&self.ns, Target::Bus, self.one(key)?).map_err(|m| self.fail(m))?;
        Ok(removed)
    }

    async fn remove_async<'a>(&'a self, key: &'a K) -> Result<bool, Error> {
        self.local.generation.fetch_add(1, SeqCst);
        let removed = self.local.memory.remove(key)?;
        invalidate_async(&self.ns, Target::Bus, self.one(key)?).await.map_err(|m| self.fail(m))?;
        Ok(removed)
    }

    fn ttl(&self, key: &K) -> Result<Option<std::time::Duration>, Error> {
        self.local.memory.ttl(key)
    }

    /// In this process only: each process's copy has its own lifetime.
    fn touch(&self, key: &K) -> Result<bool, Error> {
        self.local.memory.touch(key)
    }

    /// This process's entries; the kind tells the other processes, once for all
    /// functions.
    fn clear_tagged(&self, tagged: &(dyn Fn(&K) -> bool + Sync)) -> Result<usize, Error> {
        Ok(self.local.invalidate_where(tagged))
    }

    async fn clear_async(&self) -> Result<usize, Error> {
        let removed = self.local.invalidate();
        invalidate_async(&self.ns, Target::Bus, What::All).await.map_err(|m| self.fail(m))?;
        Ok(removed)
    }

    async fn clear_by_async<'a>(&'a self, resolved: &'a [(usize, &'a [u8])]) -> Result<usize, Error> {
        let removed = self.local.invalidate_resolved(resolved);
        invalidate_async(&self.ns, Target::Bus, self.matching(resolved)).await.map_err(|m| self.fail(m))?;
        Ok(removed)
    }
}

/// `backend = "distributed_memory"`: values in each process's memory, clears shared
/// through Redis.
#[derive(Debug, Clone, Copy)]
pub struct DistributedMemoryBackend;

impl BackendKind for DistributedMemoryBackend {
    fn name(&self) -> &'static str {
        "distributed_memory"
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// Redis, and whether this process's subscription is up (`None` before its first
    /// `distributed_memory` call starts it).
    fn health(&self) -> Option<memo_core::StoreHealth> {
        let mut health = Redis::global().probe(self.name());
        health.subscribed = super::bus::subscribed();
        Some(health)
    }

    /// Tells every process to clear a function this process never opened.
    fn cold_clear(
        &self,
        function: &'static CachedFunction,
        selector: Option<&Selector>,
    ) -> Result<usize, Error> {
        let ns = Namespace::of(function, Config::global());
        invalidate(&ns, Target::Bus, What::of(function, selector))
            .map_err(|m| Redis::global().error(self.name(), function.path(), m))?;
        Ok(0)
    }

    /// Tells every other process to drop its entries carrying the tags.
    fn invalidate_tags(&self, tags: &[String]) -> Result<usize, Error> {
        let ns = Namespace::tags(Config::global());
        invalidate(&ns, Target::Bus, What::Tags(tags.to_vec()))
            .map_err(|m| Redis::global().error(self.name(), "invalidate_tags", m))?;
        Ok(0)
    }

    fn invalidate_tags_async(&self, tags: Vec<String>) -> BoxFuture<'static, Result<usize, Error>> {
        Box::pin(async move {
            let ns = Namespace::tags(Config::global());
            invalidate_async(&ns, Target::Bus, What::Tags(tags))
                .await
                .map_err(|m| Redis::global().error("distributed_memory", "invalidate_tags", m))?;
            Ok(0)
        })
    }
}

impl<K, V> StoreFor<K, V> for DistributedMemoryBackend
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Store = DistributedMemory<K, V>;
}
