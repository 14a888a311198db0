//! The Redis backends: `json` and `pickle`, whose values live in Redis, shared by
//! every process (`limit`, `expire`, strict keys and partial clears hold there too);
//! and `distributed_memory`, whose values stay in each process and whose clears reach
//! every process through Redis pub/sub.
//!
//! A hit is one `MGET` (the value and the clear generation). A miss adds one
//! `EVALSHA` of a script that checks the generation, stores the value with its TTL
//! (`PX`), updates the function's index and evicts past `limit`, atomically. When
//! Redis fails, the call computes directly, within the configured timeout; after
//! repeated failures a circuit breaker skips Redis for a cool-down.

pub mod admin;
mod bus;
mod codec;
mod conn;
mod distributed;
mod drain;
mod lease;
mod namespace;
mod ops;
mod pending;
mod script;
mod tier;

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use memo_core::{
    Backend, BackendKind, BoxFuture, CachedFunction, Config, Error, Fill, KeyRef, Lookup, Policy, RenderTags,
    Selector, StoreFor, StoreStats, StrictKeys,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use bus::shutdown;
pub use codec::{Codec, JsonCodec, PickleCodec};
use conn::{block, Redis};
pub use distributed::{DistributedMemory, DistributedMemoryBackend, Ticket};
use namespace::{glob_escape, selected, Entry, Namespace};
pub use ops::Ticket as RedisTicket;
pub use pending::pending as pending_clears;
use pending::{invalidate, invalidate_async, Target, What};

/// Values in Redis as JSON.
pub type Json<K, V> = RedisStore<K, V, JsonCodec>;
/// Values in Redis as self-describing MessagePack (the Rust counterpart of Python's pickle, with no code
/// run on decode).
pub type Pickle<K, V> = RedisStore<K, V, PickleCodec>;

/// One function's entries in Redis, encoded by `C`.
#[derive(Debug)]
pub struct RedisStore<K, V, C> {
    function: &'static CachedFunction,
    ns: Namespace,
    policy: Policy,
    strict: Option<StrictKeys<K>>,
    tags: Option<RenderTags<K>>,
    redis: &'static Redis,
    /// Whether this process has listed the namespace in the tagged hash (functions
    /// with tags do, before their first lookup).
    listed: AtomicBool,
    /// `local = N`: values kept in this process too.
    tier: Option<tier::Tier<K, V>>,
    evictions: AtomicU64,
    decode_errors: AtomicU64,
    _types: PhantomData<fn() -> (V, C)>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redis")
    }
}

impl<K: Serialize, V, C: Codec> RedisStore<K, V, C> {
    /// The entry key of `key`: strict keys name each argument, others encode the tuple.
    fn entry(&self, key: &K) -> Result<Entry, Error> {
        let segments = crate::keys::arguments(self.function, self.strict.as_ref(), key)
            .map_err(|e| self.fail(format!("cannot encode the arguments: {e}")))?;
        Ok(self.ns.entry(&segments))
    }

    fn fail(&self, message: String) -> Error {
        self.redis.error(C::NAME, self.function.path(), message)
    }

    /// Refuses to serve from Redis while a clear of this function waits for it.
    fn admit(&self) -> Result<(), Error> {
        if pending::blocks(&self.ns) {
            return Err(self.fail("a clear of this function is waiting for Redis".into()));
        }
        Ok(())
    }

    /// Whether the namespace must still be listed in the tagged hash before a lookup.
    fn unlisted(&self) -> bool {
        self.tags.is_some() && !self.listed.load(Relaxed)
    }

    /// Lists the namespace in the tagged hash, once: before any lookup whose ticket a
    /// tag invalidation must be able to refuse.
    async fn list(&self, io: &mut impl conn::Io) -> redis::RedisResult<()> {
        if self.unlisted() {
            ops::list_tagged(io, &self.ns).await?;
            self.listed.store(true, Relaxed);
        }
        Ok(())
    }

    /// A value read from Redis; one that does not decode, or carries no epoch tag, is
    /// a miss, counted.
    /// With `stale` or `refresh`, the value's write time says how fresh it is.
    fn found(&self, found: ops::Found, entry: &Entry, ticket: RedisTicket) -> Lookup<V, RedisTicket>
    where
        V: DeserializeOwned,
    {
        self.judged(found, entry, ticket).0
    }

    /// [`found`](RedisStore::found), with the value's write time when it carries one.
    fn judged(
        &self,
        found: ops::Found,
        entry: &Entry,
        ticket: RedisTicket,
    ) -> (Lookup<V, RedisTicket>, Option<u64>)
    where
        V: DeserializeOwned,
    {
        let reason = match found {
            ops::Found::Nothing => return (Lookup::Miss(ticket), None),
            ops::Found::Value(bytes) if self.stamps() => match namespace::unstamp(&bytes) {
                Some((written, payload)) => match C::decode::<V>(payload) {
                    Ok(v) => {
                        let hash = namespace::fnv1a(entry.key.as_bytes());
                        let freshness = self.policy.freshness(written, wall_ms(), hash);
                        return (Lookup::of(v, || ticket, freshness), Some(written));
                    }
                    Err(reason) => reason,
                },
                None => "the value carries no write time".to_owned(),
            },
            ops::Found::Value(bytes) => match C::decode::<V>(&bytes) {
                Ok(v) => return (Lookup::Hit(v), None),
                Err(reason) => reason,
            },
            ops::Found::Foreign => "the value carries no epoch tag".to_owned(),
        };
        self.decode_errors.fetch_add(1, Relaxed);
        tracing::warn!(
            function = self.function.path(),
            reason,
            "memo-alchemy: undecodable value; recomputing"
        );
        (Lookup::Miss(ticket), None)
    }

    /// Whether values carry their write time: for `stale`, `refresh` and a `local` tier.
    fn stamps(&self) -> bool {
        self.policy.tracks_freshness() || self.function.local_tier().is_some()
    }

    /// Where this function's clears go: Redis, and the bus too with a `local` tier.
    fn target(&self) -> Target {
        Target::store_of(self.function)
    }

    /// The lifetime left to an entry that Redis keeps `ms` more (its lifetime, then `stale`).
    fn lifetime_left(&self, ms: Option<u64>) -> Option<Duration> {
        let left = ms?.checked_sub(self.policy.stale_ms)?;
        (left > 0).then(|| Duration::from_millis(left))
    }

    /// What `get_many` found: the values a call would be served.
    fn hits(&self, found: Vec<ops::Found>, entries: &[Entry]) -> Vec<Option<V>>
    where
        V: DeserializeOwned,
    {
        found
            .into_iter()
            .zip(entries)
            .map(|(f, entry)| self.found(f, entry, RedisTicket::default()).hit())
            .collect()
    }

    /// The tags of the entry of `key`.
    fn tags_of(&self, key: &K) -> Vec<String> {
        self.tags.map_or_else(Vec::new, |render| render(key))
    }

    fn write_args<'a>(&self, entry: &'a Entry, value: &'a [u8], ticket: &'a RedisTicket) -> ops::Write<'a> {
        ops::Write {
            entry,
            value,
            // 0 means "unbounded" to the script.
            ttl_ms: self.retention_ms(entry),
            stamp: self.stamps(),
            ticket,
        }
    }

    /// How long Redis keeps `entry` (its lifetime, plus `stale`), in the scripts' form:
    /// 0 means "never" there (the store is never opened when caching is off). Each entry
    /// gets its own lifetime within `expire_jitter`.
    fn retention_ms(&self, entry: &Entry) -> u64 {
        self.policy.retention_ms(namespace::fnv1a(entry.key.as_bytes())).unwrap_or(0)
    }

    /// The lifetime of `entry` in ms, 0 for none: past it, a value is only kept for `stale`.
    fn lifetime_ms(&self, entry: &Entry) -> u64 {
        self.policy.lifetime_ms(namespace::fnv1a(entry.key.as_bytes())).unwrap_or(0)
    }

    fn counted(&self, evicted: Option<u64>) {
        if let Some(n) = evicted {
            self.evictions.fetch_add(n, Relaxed);
        }
    }

    fn wanted(&self, resolved: &[(usize, &[u8])]) -> Vec<String> {
        selected(self.function, resolved)
    }
}

impl<K, V, C> Backend<K, V> for RedisStore<K, V, C>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    C: Codec,
{
    /// The clear generation and tag versions seen by the lookup.
    type Ticket = RedisTicket;
    /// A second round trip per miss to save a rare duplicate computation: not worth it.
    const RECHECK_ON_LEAD: bool = false;
    const GET_AT_ONCE: bool = false;

    fn open(
        function: &'static CachedFunction,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
    ) -> Result<Self, Error> {
        drain::start();
        let ns = Namespace::of(function, Config::global());
        let tier = match function.local_tier() {
            Some(n) => {
                Some(tier::Tier::open(function, n, policy, strict, tags, ns.base(), bus::Bus::global())?)
            }
            None => None,
        };
        Ok(RedisStore {
            function,
            tier,
            ns,
            policy,
            strict,
            tags,
            redis: Redis::global(),
            listed: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            _types: PhantomData,
        })
    }

    fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<Lookup<V, RedisTicket>, Error> {
        self.admit()?;
        let tiered = match &self.tier {
            Some(tier) => match tier.get(key) {
                Ok(v) => return Ok(Lookup::Hit(v)),
                Err(ticket) => ticket,
            },
            None => None,
        };
        let key = key.to_owned_key();
        let (entry, tags) = (self.entry(&key)?, self.tags_of(&key));
        let (value, mut ticket) = self
            .redis
            .run(|io| {
                block(async {
                    self.list(io).await?;
                    ops::lookup(io, &self.ns, &entry, tags).await
                })
            })
            .map_err(|m| self.fail(m))?;
        ticket.tier = tiered;
        Ok(self.keep(self.judged(value, &entry, ticket), key, &entry, tiered))
    }

    fn put(&self, key: K, value: V, fill: Fill<'_, RedisTicket>) -> Result<(), Error> {
        if !fill.is_current() {
            // A clear here overtook the computation: nothing to store, the lease goes.
            return self.release_blocking(&key, &fill.ticket);
        }
        let entry = self.entry(&key)?;
        let bytes = match C::encode(&value) {
            Ok(bytes) => bytes,
            Err(m) => {
                drop(self.release_blocking(&key, &fill.ticket));
                return Err(self.fail(format!("cannot encode the value: {m}")));
            }
        };
        let write = self.write_args(&entry, &bytes, &fill.ticket);
        let evicted =
            self.redis.run(|io| block(ops::write(io, &self.ns, &write))).map_err(|m| self.fail(m))?;
        self.stored(evicted, key, value, &entry, (fill.ticket.tier, fill.ticket.announce));
        if fill.ticket.announce && evicted.is_some() {
            self.announce(&entry)?;
        }
        Ok(())
    }

    fn clear(&self) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate()));
        invalidate(&self.ns, self.target(), What::All).map_err(|m| self.fail(m))
    }

    fn clear_by(&self, resolved: &[(usize, &[u8])]) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate_resolved(resolved)));
        invalidate(&self.ns, self.target(), What::Matching(self.wanted(resolved))).map_err(|m| self.fail(m))
    }

    /// `len` asks Redis for the live members of the function's index (one round trip,
    /// within the timeout); it is `None` when Redis does not answer.
    fn stats(&self) -> StoreStats {
        StoreStats {
            evictions: self.evictions.load(Relaxed),
            expirations: 0,
            errors: self.decode_errors.load(Relaxed),
            len: self.redis.run(|io| block(ops::live(io, &self.ns))).ok(),
        }
    }

    async fn get_async<'a, Q: KeyRef<K> + Sync + ?Sized>(
        &'a self,
        key: &'a Q,
    ) -> Result<Lookup<V, RedisTicket>, Error> {
        self.admit()?;
        let tiered = match &self.tier {
            Some(tier) => match tier.get(key) {
                Ok(v) => return Ok(Lookup::Hit(v)),
                Err(ticket) => ticket,
            },
            None => None,
        };
        let key = key.to_owned_key();
        let (entry, tags) = (self.entry(&key)?, self.tags_of(&key));
        let ns = self.ns.clone();
        let looked_up = entry.clone();
        let unlisted = self.unlisted();
        let (value, mut ticket) = self
            .redis
            .run_async(move |mut io| async move {
                if unlisted {
                    ops::list_tagged(&mut io, &ns).await?;
                }
                ops::lookup(&mut io, &ns, &looked_up, tags).await
            })
            .await
            .map_err(|m| self.fail(m))?;
        if unlisted {
            self.listed.store(true, Relaxed);
        }
        ticket.tier = tiered;
        Ok(self.keep(self.judged(value, &entry, ticket), key, &entry, tiered))
    }

    async fn put_async<'a>(&'a self, key: K, value: V, fill: Fill<'a, RedisTicket>) -> Result<(), Error> {
        if !fill.is_current() {
            return self.release_nonblocking(&key, &fill.ticket).await;
        }
        let entry = self.entry(&key)?;
        let bytes = match C::encode(&value) {
            Ok(bytes) => bytes,
            Err(m) => {
                drop(self.release_nonblocking(&key, &fill.ticket).await);
                return Err(self.fail(format!("cannot encode the value: {m}")));
            }
        };
        let (ns, ticket) = (self.ns.clone(), fill.ticket);
        let (tiered, announce) = (ticket.tier, ticket.announce);
        let kept = self.tier.as_ref().map(|_| (key, value));
        let (ttl_ms, stamp) = {
            let w = self.write_args(&entry, &bytes, &ticket);
            (w.ttl_ms, w.stamp)
        };
        let written = entry.clone();
        let evicted = self
            .redis
            .run_async(move |mut io| async move {
                let write = ops::Write { entry: &entry, value: &bytes, ttl_ms, stamp, ticket: &ticket };
                ops::write(&mut io, &ns, &write).await
            })
            .await
            .map_err(|m| self.fail(m))?;
        match kept {
            Some((key, value)) => self.stored(evicted, key, value, &written, (tiered, announce)),
            None => self.counted(evicted),
        }
        if announce && evicted.is_some() {
            self.announce_async(&written).await?;
        }
        Ok(())
    }

    /// One `MGET` for all of them.
    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, Error> {
        self.admit()?;
        let entries = keys.iter().map(|k| self.entry(k)).collect::<Result<Vec<_>, _>>()?;
        let found =
            self.redis.run(|io| block(ops::lookup_many(io, &self.ns, &entries))).map_err(|m| self.fail(m))?;
        Ok(self.hits(found, &entries))
    }

    async fn get_many_async<'a>(&'a self, keys: &'a [K]) -> Result<Vec<Option<V>>, Error> {
        self.admit()?;
        let entries = keys.iter().map(|k| self.entry(k)).collect::<Result<Vec<_>, _>>()?;
        let ns = self.ns.clone();
        let (found, entries) = self
            .redis
            .run_async(move |mut io| async move {
                let found = ops::lookup_many(&mut io, &ns, &entries).await?;
                Ok((found, entries))
            })
            .await
            .map_err(|m| self.fail(m))?;
        Ok(self.hits(found, &entries))
    }

    fn reserve(&self, key: &K) -> Result<RedisTicket, Error> {
        let (entry, tags) = (self.entry(key)?, self.tags_of(key));
        let tiered = self.unserve(key);
        let mut ticket = self
            .redis
            .run(|io| {
                block(async {
                    self.list(io).await?;
                    ops::reserve(io, &self.ns, &entry, tags).await
                })
            })
            .map_err(|m| self.fail(m))?;
        ticket.tier = tiered;
        ticket.announce = self.tier.is_some();
        Ok(ticket)
    }

    async fn reserve_async<'a>(&'a self, key: &'a K) -> Result<RedisTicket, Error> {
        let (entry, tags, ns) = (self.entry(key)?, self.tags_of(key), self.ns.clone());
        let tiered = self.unserve(key);
        let unlisted = self.unlisted();
        let mut ticket = self
            .redis
            .run_async(move |mut io| async move {
                if unlisted {
                    ops::list_tagged(&mut io, &ns).await?;
                }
                ops::reserve(&mut io, &ns, &entry, tags).await
            })
            .await
            .map_err(|m| self.fail(m))?;
        if unlisted {
            self.listed.store(true, Relaxed);
        }
        ticket.tier = tiered;
        ticket.announce = self.tier.is_some();
        Ok(ticket)
    }

    /// Kept for the retries when Redis does not take it, as a clear is.
    fn remove(&self, key: &K) -> Result<bool, Error> {
        let what = What::Key(self.entry(key)?.key);
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.remove(key)));
        invalidate(&self.ns, self.target(), what).map(|n| n > 0).map_err(|m| self.fail(m))
    }

    async fn remove_async<'a>(&'a self, key: &'a K) -> Result<bool, Error> {
        let what = What::Key(self.entry(key)?.key);
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.remove(key)));
        invalidate_async(&self.ns, self.target(), what).await.map(|n| n > 0).map_err(|m| self.fail(m))
    }

    fn ttl(&self, key: &K) -> Result<Option<Duration>, Error> {
        self.admit()?;
        let entry = self.entry(key)?;
        let lifetime = self.lifetime_ms(&entry);
        let ms =
            self.redis.run(|io| block(ops::ttl(io, &self.ns, &entry, lifetime))).map_err(|m| self.fail(m))?;
        Ok(self.lifetime_left(ms))
    }

    async fn ttl_async<'a>(&'a self, key: &'a K) -> Result<Option<Duration>, Error> {
        self.admit()?;
        let (entry, ns) = (self.entry(key)?, self.ns.clone());
        let lifetime = self.lifetime_ms(&entry);
        let ms = self
            .redis
            .run_async(move |mut io| async move { ops::ttl(&mut io, &ns, &entry, lifetime).await })
            .await
            .map_err(|m| self.fail(m))?;
        Ok(self.lifetime_left(ms))
    }

    fn touch(&self, key: &K) -> Result<bool, Error> {
        self.admit()?;
        let (entry, tags) = (self.entry(key)?, self.tags_of(key));
        let life = (self.retention_ms(&entry), self.lifetime_ms(&entry));
        self.redis.run(|io| block(ops::touch(io, &self.ns, &entry, &tags, life))).map_err(|m| self.fail(m))
    }

    async fn touch_async<'a>(&'a self, key: &'a K) -> Result<bool, Error> {
        self.admit()?;
        let (entry, tags, ns) = (self.entry(key)?, self.tags_of(key), self.ns.clone());
        let life = (self.retention_ms(&entry), self.lifetime_ms(&entry));
        self.redis
            .run_async(move |mut io| async move { ops::touch(&mut io, &ns, &entry, &tags, life).await })
            .await
            .map_err(|m| self.fail(m))
    }

    fn lead(&self, key: &K, ticket: &mut RedisTicket, wait: bool) -> Result<memo_core::Lead<V>, Error> {
        self.lead_blocking(key, ticket, wait)
    }

    async fn lead_async<'a>(
        &'a self,
        key: &'a K,
        ticket: &'a mut RedisTicket,
        wait: bool,
    ) -> Result<memo_core::Lead<V>, Error> {
        self.lead_nonblocking(key, ticket, wait).await
    }

    fn release(&self, key: &K, ticket: &RedisTicket) -> Result<(), Error> {
        self.release_blocking(key, ticket)
    }

    async fn release_async<'a>(&'a self, key: &'a K, ticket: &'a RedisTicket) -> Result<(), Error> {
        self.release_nonblocking(key, ticket).await
    }

    /// Redis's tagged entries are removed by the kind, once for every function; the
    /// `local` tier's here.
    fn clear_tagged(&self, tagged: &(dyn Fn(&K) -> bool + Sync)) -> Result<usize, Error> {
        self.tier.as_ref().inspect(|t| t.invalidate_where(tagged));
        Ok(0)
    }

    async fn clear_async(&self) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate()));
        invalidate_async(&self.ns, self.target(), What::All).await.map_err(|m| self.fail(m))
    }

    async fn clear_by_async<'a>(&'a self, resolved: &'a [(usize, &'a [u8])]) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate_resolved(resolved)));
        let what = What::Matching(self.wanted(resolved));
        invalidate_async(&self.ns, self.target(), what).await.map_err(|m| self.fail(m))
    }
}

/// `backend = "json"`: values in Redis as JSON.
#[derive(Debug, Clone, Copy)]
pub struct JsonBackend;

/// `backend = "pickle"`: values in Redis as self-describing MessagePack.
#[derive(Debug, Clone, Copy)]
pub struct PickleBackend;

macro_rules! redis_kind {
    ($kind:ident, $codec:ty) => {
        impl BackendKind for $kind {
            fn name(&self) -> &'static str {
                <$codec>::NAME
            }
            fn is_shared(&self) -> bool {
                true
            }
            fn cold_clear(
                &self,
                function: &'static CachedFunction,
                selector: Option<&Selector>,
            ) -> Result<usize, Error> {
                cold_clear(function, selector, self.name())
            }
            fn sweep(&self) -> Result<usize, Error> {
                sweep()
            }
            fn health(&self) -> Option<memo_core::StoreHealth> {
                Some(Redis::global().probe(self.name()))
            }
            fn sweep_async(&self) -> BoxFuture<'static, Result<usize, Error>> {
                sweep_async()
            }
            fn invalidate_tags(&self, tags: &[String]) -> Result<usize, Error> {
                invalidate(&Namespace::tags(Config::global()), Target::of_tags(), What::Tags(tags.to_vec()))
                    .map_err(|m| Redis::global().error(self.name(), "invalidate_tags", m))
            }
            fn invalidate_tags_async(&self, tags: Vec<String>) -> BoxFuture<'static, Result<usize, Error>> {
                let name = self.name();
                Box::pin(async move {
                    invalidate_async(&Namespace::tags(Config::global()), Target::of_tags(), What::Tags(tags))
                        .await
                        .map_err(|m| Redis::global().error(name, "invalidate_tags", m))
                })
            }
        }

        impl<K, V> StoreFor<K, V> for $kind
        where
            K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
            V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        {
            type Store = RedisStore<K, V, $codec>;
        }
    };
}

redis_kind!(JsonBackend, JsonCodec);
redis_kind!(PickleBackend, PickleCodec);

pub(crate) use crate::keys::{wall_ms, wall_nanos};

/// Clears a function this process never opened, by its namespace alone.
fn cold_clear(
    function: &'static CachedFunction,
    selector: Option<&Selector>,
    backend: &'static str,
) -> Result<usize, Error> {
    let ns = Namespace::of(function, Config::global());
    invalidate(&ns, Target::store_of(function), What::of(function, selector))
        .map_err(|m| Redis::global().error(backend, function.path(), m))
}

/// The pattern of every key under the configured prefix.
fn sweep_pattern() -> String {
    format!("{}:*", glob_escape(Config::global().key_prefix()))
}

/// Removes what is left under the configured prefix, for `flush_all`: on every
/// primary of a cluster.
fn sweep() -> Result<usize, Error> {
    let pattern = sweep_pattern();
    // The tagged hash, which running processes listed their functions in once, and the
    // bus's counter, whose reset every subscriber would take for a lost message.
    let keep = [Namespace::tags(Config::global()).tagged(), bus::sequence_key(Config::global())];
    let redis = Redis::global();
    redis
        .on_every_primary(|io, by_slot| block(ops::sweep(io, &pattern, &keep, by_slot)))
        .map_err(|m| redis.error("redis", "flush_all", m))?;
    // Entries of functions this program lacks went too: every process drops its tiers.
    invalidate(&Namespace::every_tier(Config::global()), Target::Bus, What::All)
        .map_err(|m| redis.error("redis", "flush_all", m))
}

/// [`sweep`] for `flush_all_async`: the same, on a blocking thread.
fn sweep_async() -> BoxFuture<'static, Result<usize, Error>> {
    Box::pin(async {
        match tokio::task::spawn_blocking(sweep).await {
            Ok(swept) => swept,
            Err(e) => Err(Redis::global().error("redis", "flush_all", format!("the flush task failed: {e}"))),
        }
    })
}
