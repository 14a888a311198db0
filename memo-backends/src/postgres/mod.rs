//! The postgres backend: values in one PostgreSQL table as `jsonb`, shared by every
//! process that uses the database, with the json backend's behaviour (`limit`,
//! `expire`, strict keys and partial clears, tags, entries, clear versus fill,
//! timeouts, the breaker and fall-through). The table layout is in the module `sql` and the
//! README.
//!
//! A hit is one prepared `SELECT` by primary key. A miss adds one query for the
//! function's clear generation and its tags' versions, and one call of the
//! `memo_write` function, which checks them, upserts the row and evicts past `limit`,
//! atomically under a per-function advisory lock.
//!
//! With `single_flight = "global"`, the leader of a miss also takes the key's lease
//! (one more call, `memo_lease`) before it runs the body: see the module `lease`.
//!
//! With `local = N`, up to N values are kept in this process too (the shared tier of `memo-backends`): a
//! hit there makes no query. Clears, partial clears, removals, tag invalidations and
//! direct writes reach the other processes' tiers through `LISTEN`/`NOTIFY` (the
//! module `bus`), after the table changed, within the same retried attempt.

pub mod admin;
mod blocking;
mod bus;
mod cleanup;
mod conn;
mod lease;
mod pending;
mod sql;
mod value;

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use memo_core::{
    Backend, BackendKind, BoxFuture, CachedFunction, Config, Error, Fill, Freshness, KeyRef, Lead, Lookup,
    Policy, RenderTags, Selector, StoreFor, StoreStats, StrictKeys,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use cleanup::{start_cleanup, Cleanup};
use conn::{Postgres as Db, Session};
pub use pending::pending as pending_clears;
use pending::{invalidate, invalidate_async, Target, What};

use crate::keys::{fnv1a, selected, wall_ms};
use crate::tier::{Tier, TierTicket};

/// What a miss hands to the write: the clear generation and the versions of the
/// entry's tags that the lookup saw (or that were read again with the key's lease),
/// and the token of the lease this process holds on the key, if any.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    generation: i64,
    tags: Vec<String>,
    versions: Vec<i64>,
    /// The token of this process's lease on the key (`single_flight = "global"`).
    lease: Option<String>,
    /// What the `local` tier's lookup saw, for the tier's fill.
    tier: TierTicket,
    /// A direct write of a function with a `local` tier: once stored, the other
    /// processes are told.
    announce: bool,
}

/// One function's entries in PostgreSQL.
#[derive(Debug)]
pub struct Postgres<K, V> {
    function: &'static CachedFunction,
    /// The `namespace` column of the function's rows.
    ns: String,
    policy: Policy,
    strict: Option<StrictKeys<K>>,
    tags: Option<RenderTags<K>>,
    db: &'static Db,
    /// `local = N`: values kept in this process too.
    tier: Option<Tier<K, V>>,
    evictions: AtomicU64,
    decode_errors: AtomicU64,
    _types: PhantomData<fn() -> V>,
}

/// The `namespace` of `function`'s rows: the key prefix, the function's prefix, the
/// backend, its path and the fingerprint of its signature.
fn namespace(function: &'static CachedFunction, config: &Config) -> String {
    format!(
        "{}:{}:postgres:{}:{:016x}",
        config.key_prefix(),
        function.key_prefix().unwrap_or("_"),
        function.path(),
        crate::keys::fingerprint(function, config),
    )
}

/// The milliseconds of `ms` as the SQL functions take them: 0 for none.
fn ms(ms: Option<u64>) -> i64 {
    ms.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

impl<K: Serialize, V: DeserializeOwned> Postgres<K, V> {
    /// The `key` column of `key`.
    fn key(&self, key: &K) -> Result<String, Error> {
        crate::keys::arguments(self.function, self.strict.as_ref(), key)
            .map_err(|e| self.fail(format!("cannot encode the arguments: {e}")))
    }

    fn fail(&self, message: String) -> Error {
        self.db.error(self.function.path(), message)
    }

    /// Refuses to serve from PostgreSQL while a clear of this function waits for it.
    fn admit(&self) -> Result<(), Error> {
        if pending::blocks(&self.ns, self.function) {
            return Err(self.fail("a clear of this function is waiting for PostgreSQL".into()));
        }
        Ok(())
    }

    fn tags_of(&self, key: &K) -> Vec<String> {
        self.tags.map_or_else(Vec::new, |render| storable(render(key)))
    }

    /// How long the row of `key` is kept (its lifetime, plus `stale`), 0 for ever.
    fn retention_ms(&self, key: &str) -> i64 {
        ms(self.policy.retention_ms(fnv1a(key.as_bytes())))
    }

    /// The lifetime of the row of `key`, 0 for none: past it, a value is only kept for `stale`.
    fn lifetime_ms(&self, key: &str) -> i64 {
        ms(self.policy.lifetime_ms(fnv1a(key.as_bytes())))
    }

    /// The value of a row, or `None` (counted, logged) when it does not decode.
    fn decoded(&self, row: &tokio_postgres::Row, index: usize) -> Option<V> {
        match value::decode(row, index) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.decode_errors.fetch_add(1, Relaxed);
                tracing::warn!(
                    function = self.function.path(),
                    reason,
                    "memo-alchemy: undecodable value in PostgreSQL; recomputing"
                );
                None
            }
        }
    }

    /// How fresh a value written `age` ms ago by the database's clock is (judged by
    /// that one clock, so a skew between hosts does not matter).
    fn freshness(&self, key: &str, age: i64) -> Freshness {
        if !self.policy.tracks_freshness() {
            return Freshness::Fresh;
        }
        let now = wall_ms();
        let written = now.saturating_sub(u64::try_from(age).unwrap_or(0));
        self.policy.freshness(written, now, fnv1a(key.as_bytes()))
    }

    /// The lookup of `key`, over a pooled client, and the value's age (ms, by the
    /// database's clock) when a `local` tier wants it.
    async fn lookup(
        &self,
        c: Session,
        key: String,
        tags: Vec<String>,
    ) -> Result<(Lookup<V, Ticket>, Option<i64>), PgError> {
        let sql = &self.db.sql;
        // The write time matters only to `stale`, `refresh` and a `local` tier.
        let stamped = self.policy.tracks_freshness() || self.tier.is_some();
        let get = if stamped { &sql.get_stamped } else { &sql.get };
        let row = c.query_opt(&c.prepare_cached(get).await?, &[&self.ns, &key]).await?;
        let found = row.and_then(|row| Some((self.decoded(&row, 0)?, if stamped { row.get(1) } else { 0 })));
        let (found, freshness, age) = match found {
            Some((v, age)) => (Some(v), self.freshness(&key, age), stamped.then_some(age)),
            None => (None, Freshness::Stale, None),
        };
        let found = match (found, freshness) {
            (Some(v), Freshness::Fresh) => return Ok((Lookup::Hit(v), age)),
            (found, _) => found,
        };
        let ticket = ticket(&c, &self.ns, tags).await?;
        Ok((
            match found {
                Some(v) => Lookup::of(v, || ticket, freshness),
                None => Lookup::Miss(ticket),
            },
            None,
        ))
    }

    /// A lookup's answer; a hit enters the tier, until the row's end of life.
    fn keep(
        &self,
        (lookup, age): (Lookup<V, Ticket>, Option<i64>),
        key: K,
        entry: &str,
        ticket: TierTicket,
    ) -> Lookup<V, Ticket>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        if let Some(tier) = &self.tier {
            let written = age.map(|age| wall_ms().saturating_sub(u64::try_from(age).unwrap_or(0)));
            tier.keep(&lookup, key, written, fnv1a(entry.as_bytes()), ticket);
        }
        lookup
    }

    /// The values of `keys` that a call would be served, in one query.
    async fn lookup_many(&self, c: Session, keys: Vec<String>) -> Result<Vec<Option<V>>, PgError> {
        let rows = c.query(&c.prepare_cached(&self.db.sql.get_many).await?, &[&self.ns, &keys]).await?;
        let mut found: std::collections::HashMap<String, (V, i64)> = std::collections::HashMap::new();
        for row in rows {
            if let Some(v) = self.decoded(&row, 1) {
                found.insert(row.get(0), (v, row.get(2)));
            }
        }
        Ok(keys
            .iter()
            .map(|key| {
                let (v, written) = found.remove(key)?;
                matches!(self.freshness(key, written), Freshness::Fresh | Freshness::Refresh).then_some(v)
            })
            .collect())
    }

    /// Stores `value` under `key` unless a clear or an invalidation happened since the
    /// lookup that handed out `ticket`.
    async fn write(
        &self,
        c: Session,
        key: String,
        value: value::Jsonb,
        ticket: Ticket,
    ) -> Result<bool, PgError> {
        let (retention, limit) = (self.retention_ms(&key), self.limit());
        let statement = c.prepare_cached(&self.db.sql.write).await?;
        let row = c
            .query_one(
                &statement,
                &[
                    &self.ns,
                    &key,
                    &value,
                    &ticket.tags,
                    &ticket.generation,
                    &ticket.versions,
                    &retention,
                    &limit,
                    &ticket.lease,
                ],
            )
            .await?;
        let evicted: i64 = row.get(0);
        if evicted > 0 {
            self.evictions.fetch_add(u64::try_from(evicted).unwrap_or(0), Relaxed);
        }
        Ok(evicted >= 0)
    }

    fn limit(&self) -> i64 {
        self.policy.limit.max().map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX))
    }

    /// A ticket for a direct write of `key`: the generation moves on first (no fill
    /// that began before stores), then the ticket is read.
    async fn reserve_with(&self, c: Session, tags: Vec<String>) -> Result<Ticket, PgError> {
        c.query_one(&c.prepare_cached(&self.db.sql.bump).await?, &[&self.ns]).await?;
        ticket(&c, &self.ns, tags).await
    }

    /// The ms left to the live row of `key`, `None` when it never expires; no row when
    /// it is not live.
    async fn ttl_with(&self, c: Session, key: String) -> Result<Option<Option<i64>>, PgError> {
        let lifetime = self.lifetime_ms(&key);
        let row =
            c.query_opt(&c.prepare_cached(&self.db.sql.ttl).await?, &[&self.ns, &key, &lifetime]).await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn touch_with(&self, c: Session, key: String) -> Result<bool, PgError> {
        let (retention, lifetime) = (self.retention_ms(&key), self.lifetime_ms(&key));
        let touched = c
            .execute(&c.prepare_cached(&self.db.sql.touch).await?, &[&self.ns, &key, &retention, &lifetime])
            .await?;
        Ok(touched > 0)
    }

    /// The lifetime left to a row that is kept `ms` more (its lifetime, then `stale`).
    fn lifetime_left(&self, ms: Option<Option<i64>>) -> Option<Duration> {
        let ms = u64::try_from(ms??).ok()?;
        let left = ms.checked_sub(self.policy.stale_ms)?;
        (left > 0).then(|| Duration::from_millis(left))
    }

    fn wanted(&self, resolved: &[(usize, &[u8])]) -> What {
        What::Matching(selected(self.function, resolved))
    }

    fn fill_value(&self, value: &V) -> Result<value::Jsonb, Error>
    where
        V: Serialize,
    {
        value::Jsonb::encode(value).map_err(|m| self.fail(format!("cannot encode the value: {m}")))
    }
}

type PgError = tokio_postgres::Error;

/// A lookup's answer, its ticket (on a miss) carrying what the tier's lookup saw.
fn tiered_ticket<V>(
    (lookup, age): (Lookup<V, Ticket>, Option<i64>),
    tier: TierTicket,
) -> (Lookup<V, Ticket>, Option<i64>) {
    let lookup = match lookup {
        Lookup::Miss(ticket) => Lookup::Miss(Ticket { tier, ..ticket }),
        Lookup::Stale(v, ticket) => Lookup::Stale(v, Ticket { tier, ..ticket }),
        Lookup::Refresh(v, ticket) => Lookup::Refresh(v, Ticket { tier, ..ticket }),
        hit @ Lookup::Hit(_) => hit,
    };
    (lookup, age)
}

impl<K, V> Postgres<K, V>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Where this function's clears go: the table, and the bus too with a `local` tier.
    fn target(&self) -> Target {
        Target::store_of(self.function)
    }

    /// A write's outcome: a stored value enters the tier, until its end of life
    /// (`direct`: a direct write's, see [`Tier::stored`]).
    fn stored(&self, stored: bool, key: K, value: V, entry: &str, (ticket, direct): (TierTicket, bool)) {
        if let (Some(tier), true) = (&self.tier, stored) {
            tier.stored(key, value, fnv1a(entry.as_bytes()), ticket, direct);
        }
    }

    /// Before a direct write of `key`: its value here goes and fills that began before
    /// are refused; the tier's ticket for the write. (The other processes are told once
    /// the value is stored: told before, they could read the old one again.)
    fn unserve(&self, key: &K) -> TierTicket {
        self.tier.as_ref()?.unserve(key)
    }
}

/// The clear generation of `ns` and the versions of `tags`.
async fn ticket(c: &Session, ns: &str, tags: Vec<String>) -> Result<Ticket, PgError> {
    let row = c.query_one(&c.prepare_cached(&Db::global().sql.ticket).await?, &[&ns, &tags]).await?;
    Ok(Ticket { generation: row.get(0), versions: row.get(1), tags, ..Ticket::default() })
}

impl<K, V> Backend<K, V> for Postgres<K, V>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The clear generation and tag versions seen by the lookup.
    type Ticket = Ticket;
    /// A second round trip per miss to save a rare duplicate computation: not worth it.
    const RECHECK_ON_LEAD: bool = false;
    const GET_AT_ONCE: bool = false;

    fn open(
        function: &'static CachedFunction,
        policy: Policy,
        strict: Option<StrictKeys<K>>,
        tags: Option<RenderTags<K>>,
    ) -> Result<Self, Error> {
        let ns = namespace(function, Config::global());
        let tier = match function.local_tier() {
            Some(n) => Some(Tier::open(function, n, policy, strict, tags, &ns, bus::Bus::global())?),
            None => None,
        };
        Ok(Postgres {
            function,
            ns,
            policy,
            strict,
            tags,
            db: Db::global(),
            tier,
            evictions: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            _types: PhantomData,
        })
    }

    fn get<Q: KeyRef<K> + ?Sized>(&self, key: &Q) -> Result<Lookup<V, Ticket>, Error> {
        self.admit()?;
        let tiered = match &self.tier {
            Some(tier) => match tier.get(key) {
                Ok(v) => return Ok(Lookup::Hit(v)),
                Err(ticket) => ticket,
            },
            None => None,
        };
        let key = key.to_owned_key();
        let (entry, tags) = (self.key(&key)?, self.tags_of(&key));
        let found = self.db.run(|c| self.lookup(c, entry.clone(), tags)).map_err(|m| self.fail(m))?;
        Ok(self.keep(tiered_ticket(found, tiered), key, &entry, tiered))
    }

    async fn get_async<'a, Q: KeyRef<K> + Sync + ?Sized>(
        &'a self,
        key: &'a Q,
    ) -> Result<Lookup<V, Ticket>, Error> {
        self.admit()?;
        let tiered = match &self.tier {
            Some(tier) => match tier.get(key) {
                Ok(v) => return Ok(Lookup::Hit(v)),
                Err(ticket) => ticket,
            },
            None => None,
        };
        let key = key.to_owned_key();
        let (entry, tags) = (self.key(&key)?, self.tags_of(&key));
        let found =
            self.db.run_async(|c| self.lookup(c, entry.clone(), tags)).await.map_err(|m| self.fail(m))?;
        Ok(self.keep(tiered_ticket(found, tiered), key, &entry, tiered))
    }

    fn put(&self, key: K, value: V, fill: Fill<'_, Ticket>) -> Result<(), Error> {
        if !fill.is_current() {
            // Nothing to store; a lease held for it would otherwise make other
            // processes wait it out.
            return self.release_blocking(&key, &fill.ticket);
        }
        let entry = self.key(&key)?;
        let bytes = match self.fill_value(&value) {
            Ok(bytes) => bytes,
            Err(err) => {
                // Nothing to store: the lease goes, or others would wait it out.
                drop(self.release_blocking(&key, &fill.ticket));
                return Err(err);
            }
        };
        let (tiered, announce) = (fill.ticket.tier, fill.ticket.announce);
        let stored =
            self.db.run(|c| self.write(c, entry.clone(), bytes, fill.ticket)).map_err(|m| self.fail(m))?;
        self.stored(stored, key, value, &entry, (tiered, announce));
        if announce && stored {
            invalidate(&self.ns, Target::Bus, What::Key(entry)).map_err(|m| self.fail(m))?;
        }
        Ok(())
    }

    async fn put_async<'a>(&'a self, key: K, value: V, fill: Fill<'a, Ticket>) -> Result<(), Error> {
        if !fill.is_current() {
            return self.release_nonblocking(&key, &fill.ticket).await;
        }
        let entry = self.key(&key)?;
        let bytes = match self.fill_value(&value) {
            Ok(bytes) => bytes,
            Err(err) => {
                drop(self.release_nonblocking(&key, &fill.ticket).await);
                return Err(err);
            }
        };
        let (tiered, announce) = (fill.ticket.tier, fill.ticket.announce);
        let stored = self
            .db
            .run_async(|c| self.write(c, entry.clone(), bytes, fill.ticket))
            .await
            .map_err(|m| self.fail(m))?;
        self.stored(stored, key, value, &entry, (tiered, announce));
        if announce && stored {
            invalidate_async(&self.ns, Target::Bus, What::Key(entry)).await.map_err(|m| self.fail(m))?;
        }
        Ok(())
    }

    fn clear(&self) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate()));
        invalidate(&self.ns, self.target(), What::All).map_err(|m| self.fail(m))
    }

    async fn clear_async(&self) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate()));
        invalidate_async(&self.ns, self.target(), What::All).await.map_err(|m| self.fail(m))
    }

    fn clear_by(&self, resolved: &[(usize, &[u8])]) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate_resolved(resolved)));
        invalidate(&self.ns, self.target(), self.wanted(resolved)).map_err(|m| self.fail(m))
    }

    async fn clear_by_async<'a>(&'a self, resolved: &'a [(usize, &'a [u8])]) -> Result<usize, Error> {
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.invalidate_resolved(resolved)));
        invalidate_async(&self.ns, self.target(), self.wanted(resolved)).await.map_err(|m| self.fail(m))
    }

    /// `len` counts the function's live rows (one query, within the timeout); it is
    /// `None` when PostgreSQL does not answer.
    fn stats(&self) -> StoreStats {
        let len = self.db.run(|c| async move {
            let row = c.query_one(&c.prepare_cached(&self.db.sql.len).await?, &[&self.ns]).await?;
            Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        });
        StoreStats {
            evictions: self.evictions.load(Relaxed),
            expirations: 0,
            errors: self.decode_errors.load(Relaxed),
            len: len.ok(),
        }
    }

    /// One `SELECT … WHERE key = ANY($2)` for all of them.
    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, Error> {
        self.admit()?;
        let entries = keys.iter().map(|k| self.key(k)).collect::<Result<Vec<_>, _>>()?;
        self.db.run(|c| self.lookup_many(c, entries)).map_err(|m| self.fail(m))
    }

    async fn get_many_async<'a>(&'a self, keys: &'a [K]) -> Result<Vec<Option<V>>, Error> {
        self.admit()?;
        let entries = keys.iter().map(|k| self.key(k)).collect::<Result<Vec<_>, _>>()?;
        self.db.run_async(|c| self.lookup_many(c, entries)).await.map_err(|m| self.fail(m))
    }

    fn reserve(&self, key: &K) -> Result<Ticket, Error> {
        let tags = self.tags_of(key);
        let tiered = self.unserve(key);
        let ticket = self.db.run(|c| self.reserve_with(c, tags)).map_err(|m| self.fail(m))?;
        Ok(Ticket { tier: tiered, announce: self.tier.is_some(), ..ticket })
    }

    async fn reserve_async<'a>(&'a self, key: &'a K) -> Result<Ticket, Error> {
        let tags = self.tags_of(key);
        let tiered = self.unserve(key);
        let ticket = self.db.run_async(|c| self.reserve_with(c, tags)).await.map_err(|m| self.fail(m))?;
        Ok(Ticket { tier: tiered, announce: self.tier.is_some(), ..ticket })
    }

    /// Kept for the retries when PostgreSQL does not take it, as a clear is.
    fn remove(&self, key: &K) -> Result<bool, Error> {
        let what = What::Key(self.key(key)?);
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.remove(key)));
        invalidate(&self.ns, self.target(), what).map(|n| n > 0).map_err(|m| self.fail(m))
    }

    async fn remove_async<'a>(&'a self, key: &'a K) -> Result<bool, Error> {
        let what = What::Key(self.key(key)?);
        let _clearing = self.tier.as_ref().map(|t| (t.clearing(), t.remove(key)));
        invalidate_async(&self.ns, self.target(), what).await.map(|n| n > 0).map_err(|m| self.fail(m))
    }

    fn ttl(&self, key: &K) -> Result<Option<Duration>, Error> {
        self.admit()?;
        let entry = self.key(key)?;
        let ms = self.db.run(|c| self.ttl_with(c, entry)).map_err(|m| self.fail(m))?;
        Ok(self.lifetime_left(ms))
    }

    async fn ttl_async<'a>(&'a self, key: &'a K) -> Result<Option<Duration>, Error> {
        self.admit()?;
        let entry = self.key(key)?;
        let ms = self.db.run_async(|c| self.ttl_with(c, entry)).await.map_err(|m| self.fail(m))?;
        Ok(self.lifetime_left(ms))
    }

    fn touch(&self, key: &K) -> Result<bool, Error> {
        self.admit()?;
        let entry = self.key(key)?;
        self.db.run(|c| self.touch_with(c, entry)).map_err(|m| self.fail(m))
    }

    async fn touch_async<'a>(&'a self, key: &'a K) -> Result<bool, Error> {
        self.admit()?;
        let entry = self.key(key)?;
        self.db.run_async(|c| self.touch_with(c, entry)).await.map_err(|m| self.fail(m))
    }

    /// Takes the key's lease (`memo_lease`), or waits for the value of the process
    /// that holds it: see the module `lease`.
    fn lead(&self, key: &K, ticket: &mut Ticket, wait: bool) -> Result<Lead<V>, Error> {
        self.lead_blocking(key, ticket, wait)
    }

    async fn lead_async<'a>(
        &'a self,
        key: &'a K,
        ticket: &'a mut Ticket,
        wait: bool,
    ) -> Result<Lead<V>, Error> {
        self.lead_nonblocking(key, ticket, wait).await
    }

    fn release(&self, key: &K, ticket: &Ticket) -> Result<(), Error> {
        self.release_blocking(key, ticket)
    }

    async fn release_async<'a>(&'a self, key: &'a K, ticket: &'a Ticket) -> Result<(), Error> {
        self.release_nonblocking(key, ticket).await
    }

    /// Tagged rows are removed by the kind, once for every function; the `local`
    /// tier's here.
    fn clear_tagged(&self, tagged: &(dyn Fn(&K) -> bool + Sync)) -> Result<usize, Error> {
        self.tier.as_ref().inspect(|t| t.invalidate_where(tagged));
        Ok(0)
    }
}

/// `backend = "postgres"`: values in a PostgreSQL table, as `jsonb`.
#[derive(Debug, Clone, Copy)]
pub struct PostgresBackend;

impl BackendKind for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn health(&self) -> Option<memo_core::StoreHealth> {
        Some(conn::Postgres::global().probe())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn cold_clear(
        &self,
        function: &'static CachedFunction,
        selector: Option<&Selector>,
    ) -> Result<usize, Error> {
        let ns = namespace(function, Config::global());
        invalidate(&ns, Target::store_of(function), What::of(function, selector))
            .map_err(|m| Db::global().error(function.path(), m))
    }

    fn sweep(&self) -> Result<usize, Error> {
        let db = Db::global();
        let prefix = format!("{}:", Config::global().key_prefix());
        db.run(|c| async move {
            c.execute(&c.prepare_cached(&db.sql.sweep).await?, &[&prefix]).await?;
            Ok(0)
        })
        .map_err(|m| db.error("flush_all", m))?;
        // Rows of functions this program lacks went too: every process drops its tiers.
        invalidate("", Target::Bus, What::All).map_err(|m| db.error("flush_all", m))
    }

    fn sweep_async(&self) -> BoxFuture<'static, Result<usize, Error>> {
        Box::pin(async {
            let db = Db::global();
            let prefix = format!("{}:", Config::global().key_prefix());
            db.run_async(|c| async move {
                c.execute(&c.prepare_cached(&db.sql.sweep).await?, &[&prefix]).await?;
                Ok(0)
            })
            .await
            .map_err(|m| db.error("flush_all", m))?;
            invalidate_async("", Target::Bus, What::All).await.map_err(|m| db.error("flush_all", m))
        })
    }

    fn invalidate_tags(&self, tags: &[String]) -> Result<usize, Error> {
        // Made storable where they reach the table: the bus carries them as they are.
        invalidate(pending::TAGS, Target::of_tags(), What::Tags(tags.to_vec()))
            .map_err(|m| Db::global().error("invalidate_tags", m))
    }

    fn invalidate_tags_async(&self, tags: Vec<String>) -> BoxFuture<'static, Result<usize, Error>> {
        Box::pin(async move {
            invalidate_async(pending::TAGS, Target::of_tags(), What::Tags(tags))
                .await
                .map_err(|m| Db::global().error("invalidate_tags", m))
        })
    }
}

/// Tags as a `text` column can hold them: PostgreSQL refuses NUL, which a tag rendered
/// from an argument may contain, so it is written `\0` (in entries and invalidations
/// alike; a tag holding the two characters `\0` is then the same tag). Without this, an
/// invalidation of such a tag would be refused for ever, and retried for ever.
fn storable(tags: Vec<String>) -> Vec<String> {
    tags.into_iter().map(|t| if t.contains('\0') { t.replace('\0', "\\0") } else { t }).collect()
}

impl<K, V> StoreFor<K, V> for PostgresBackend
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Store = Postgres<K, V>;
}
