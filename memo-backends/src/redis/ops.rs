//! The store's operations, written once over [`Io`] for blocking and `async` callers.

use redis::{cmd, RedisResult};

use super::conn::Io;
use super::namespace::{has_segments, key_slot, untag, Entry, Namespace};
use super::script::{CLEAR, DRAIN, ENTRY, LEASE, PUBLISH, RELEASE, TAGS, TAG_BATCH, WRITE};

/// Keys removed per round trip by clears: small enough that Redis never stalls.
const BATCH: usize = 1000;

/// What a lookup found: the value's payload in the current epoch, if any.
pub(crate) enum Found {
    Value(Vec<u8>),
    /// Bytes that carry no epoch tag: not written by this library (or damaged).
    Foreign,
    Nothing,
}

/// What a miss hands to the write: the clear generation and the versions of the entry's
/// tags that the lookup saw.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    generation: String,
    /// `(tag, version)` for each tag of the entry.
    tags: Vec<(String, String)>,
    /// The token of this process's lease on the entry (`single_flight = "global"`).
    lease: Option<String>,
    /// What the `local` tier's lookup saw, for the tier's fill.
    pub(crate) tier: super::tier::TierTicket,
    /// A direct write of a function with a `local` tier: once stored, the other
    /// processes are told to drop their copies.
    pub(crate) announce: bool,
}

impl Ticket {
    /// The token of the lease this ticket holds.
    pub(crate) fn lease(&self) -> Option<&str> {
        self.lease.as_deref()
    }
}

/// What a [`lease`] found.
pub(crate) enum Leased {
    /// The entry's value, in the current epoch.
    Value(Found),
    /// The lease is now the ticket's, which was read again with it.
    Mine,
    /// Another holds the lease, for this many more ms.
    Held(u64),
}

/// Takes the lease of `entry` for `lease_ms` (with `look`, unless its value is there
/// already); on success, `ticket` is read again and carries the lease's token.
pub(crate) async fn lease(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &Entry,
    ticket: &mut Ticket,
    lease_ms: u64,
    look: bool,
) -> RedisResult<Leased> {
    let shard = entry.shard;
    let token = unique();
    let mut invocation = LEASE.prepare_invoke();
    invocation.key(&entry.key).key(ns.lease(entry)).key(ns.generation(shard)).key(ns.epoch(shard));
    for (tag, _) in &ticket.tags {
        invocation.key(ns.tag_version(shard, tag));
    }
    invocation.arg(&token).arg(lease_ms).arg(u8::from(look)).arg(ticket.tags.len());
    let answer: Vec<redis::Value> = io.invoke(&invocation).await?;
    let text = |i: usize| -> RedisResult<Vec<u8>> { parsed(answer.get(i)) };
    let status: i64 = parsed(answer.first())?;
    Ok(match status {
        1 => {
            let (value, epoch) = (text(1)?, text(2)?);
            Leased::Value(found(Some(&value), &String::from_utf8_lossy(&epoch)))
        }
        2 => {
            ticket.generation = String::from_utf8_lossy(&text(1)?).into_owned();
            for (i, (_, version)) in ticket.tags.iter_mut().enumerate() {
                *version = String::from_utf8_lossy(&text(2 + i)?).into_owned();
            }
            ticket.lease = Some(token);
            Leased::Mine
        }
        _ => Leased::Held(parsed::<i64>(answer.get(1))?.max(0).unsigned_abs()),
    })
}

/// One element of a script's array answer, typed.
fn parsed<T: redis::FromRedisValue>(value: Option<&redis::Value>) -> RedisResult<T> {
    let value = value.unwrap_or(&redis::Value::Nil);
    redis::from_redis_value_ref(value)
        .map_err(|e| redis::RedisError::from((redis::ErrorKind::Parse, "unexpected answer", e.to_string())))
}

/// Gives the lease `ticket` holds on `entry` back, if it still holds it.
pub(crate) async fn release(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &Entry,
    ticket: &Ticket,
) -> RedisResult<()> {
    if let Some(token) = &ticket.lease {
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(ns.lease(entry)).arg(token);
        let _: i64 = io.invoke(&invocation).await?;
    }
    Ok(())
}

/// The value of `entry` in the current epoch, its sub-index's clear generation and the
/// versions of `tags` there: one `MGET`.
pub(crate) async fn lookup(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &Entry,
    tags: Vec<String>,
) -> RedisResult<(Found, Ticket)> {
    let shard = entry.shard;
    let mut mget = cmd("MGET");
    mget.arg(&entry.key).arg(ns.generation(shard)).arg(ns.epoch(shard));
    for tag in &tags {
        mget.arg(ns.tag_version(shard, tag));
    }
    let values: Vec<Option<Vec<u8>>> = io.query(&mget).await?;
    let text = |v: &Option<Vec<u8>>| {
        v.as_deref().map_or_else(|| "0".to_owned(), |b| String::from_utf8_lossy(b).into_owned())
    };
    let epoch = values.get(2).map_or_else(|| "0".to_owned(), text);
    let found = found(values.first().and_then(Option::as_deref), &epoch);
    let generation = values.get(1).map_or_else(|| "0".to_owned(), text);
    let versions = values.iter().skip(3).map(text);
    Ok((
        found,
        Ticket {
            generation,
            tags: tags.into_iter().zip(versions).collect(),
            lease: None,
            tier: None,
            announce: false,
        },
    ))
}

/// Lists a namespace with tags in the tagged hash, so that tag invalidations in every
/// process reach its sub-indexes: done before its first lookup.
pub(crate) async fn list_tagged(io: &mut impl Io, ns: &Namespace) -> RedisResult<()> {
    let _: i64 = io.query(cmd("HSET").arg(ns.tagged()).arg(ns.base()).arg(ns.listing())).await?;
    Ok(())
}

/// A ticket for a direct write of `entry`: the generation moves on first (no fill that
/// began before stores), then the ticket is read.
pub(crate) async fn reserve(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &Entry,
    tags: Vec<String>,
) -> RedisResult<Ticket> {
    advance_generation(io, ns, entry.shard).await?;
    Ok(lookup(io, ns, entry, tags).await?.1)
}

/// The values of `entries` in the current epoch: one `MGET` per sub-index they fall in
/// (one on a single server).
pub(crate) async fn lookup_many(
    io: &mut impl Io,
    ns: &Namespace,
    entries: &[Entry],
) -> RedisResult<Vec<Found>> {
    let mut found: Vec<Found> = entries.iter().map(|_| Found::Nothing).collect();
    for shard in 0..ns.shard_count() {
        let mine: Vec<usize> = (0..entries.len()).filter(|i| entries[*i].shard == shard).collect();
        if mine.is_empty() {
            continue;
        }
        let mut mget = cmd("MGET");
        mget.arg(ns.epoch(shard));
        for i in &mine {
            mget.arg(&entries[*i].key);
        }
        let mut values: Vec<Option<Vec<u8>>> = io.query(&mget).await?;
        let epoch = match values.first_mut().and_then(Option::take) {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => "0".to_owned(),
        };
        for (i, value) in mine.into_iter().zip(values.iter().skip(1)) {
            found[i] = self::found(value.as_deref(), &epoch);
        }
    }
    Ok(found)
}

/// What a stored value is worth in `epoch`.
fn found(value: Option<&[u8]>, epoch: &str) -> Found {
    match value.map(|v| untag(v, epoch)) {
        Some(Ok(Some(payload))) => Found::Value(payload.to_vec()),
        Some(Err(())) => Found::Foreign,
        // From an epoch a full clear ended: as good as removed.
        Some(Ok(None)) | None => Found::Nothing,
    }
}

/// What one write asks of the script.
pub(crate) struct Write<'a> {
    pub(crate) entry: &'a Entry,
    pub(crate) value: &'a [u8],
    pub(crate) ttl_ms: u64,
    /// Stamp the value with its write time (`stale`, `refresh`).
    pub(crate) stamp: bool,
    pub(crate) ticket: &'a Ticket,
}

/// Stores a value unless a clear or an invalidation of one of its tags happened since
/// the lookup: returns the entries evicted, or `None` when the write was refused.
pub(crate) async fn write(io: &mut impl Io, ns: &Namespace, w: &Write<'_>) -> RedisResult<Option<u64>> {
    let shard = w.entry.shard;
    let mut invocation = WRITE.prepare_invoke();
    invocation.key(&w.entry.key).key(ns.index(shard)).key(ns.generation(shard)).key(ns.epoch(shard));
    for (tag, _) in &w.ticket.tags {
        invocation.key(ns.tag_set(shard, tag));
    }
    for (tag, _) in &w.ticket.tags {
        invocation.key(ns.tag_version(shard, tag));
    }
    if w.ticket.lease.is_some() {
        invocation.key(ns.lease(w.entry));
    }
    invocation.arg(w.value).arg(w.ttl_ms).arg(ns.limit(shard)).arg(&w.ticket.generation).arg(ns.ttl_ms());
    invocation.arg(u8::from(w.stamp)).arg(w.ticket.tags.len());
    for (_, version) in &w.ticket.tags {
        invocation.arg(version);
    }
    invocation.arg(w.ticket.lease.as_deref().unwrap_or(""));
    let evicted: i64 = io.invoke(&invocation).await?;
    Ok(u64::try_from(evicted).ok())
}

/// One operation of [`ENTRY`] on the entry `entry` with tags `tags`.
async fn on_entry(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &Entry,
    op: &str,
    tags: &[String],
    (ttl_ms, lifetime_ms): (u64, u64),
) -> RedisResult<i64> {
    let shard = entry.shard;
    let mut invocation = ENTRY.prepare_invoke();
    invocation.key(&entry.key).key(ns.index(shard)).key(ns.generation(shard)).key(ns.epoch(shard));
    for tag in tags {
        invocation.key(ns.tag_set(shard, tag));
    }
    invocation.arg(op).arg(tags.len()).arg(ttl_ms).arg(lifetime_ms);
    io.invoke(&invocation).await
}

/// Removes `entry`, moving the generation on; whether it was live. (A stamped entry's
/// lifetime is not known here: one kept by `stale` counts as live.)
pub(crate) async fn remove(io: &mut impl Io, ns: &Namespace, entry: &Entry) -> RedisResult<bool> {
    Ok(on_entry(io, ns, entry, "remove", &[], (0, 0)).await? == 1)
}

/// The ms Redis keeps `entry`: `None` when it is not live (within `lifetime_ms`, 0 for
/// unknown) or never expires.
pub(crate) async fn ttl(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &Entry,
    lifetime_ms: u64,
) -> RedisResult<Option<u64>> {
    Ok(u64::try_from(on_entry(io, ns, entry, "ttl", &[], (0, lifetime_ms)).await?).ok())
}

/// Restarts the life of `entry`: kept `ttl_ms` from now (0 for ever), within a lifetime
/// of `lifetime_ms` (0 for none); whether it was live.
pub(crate) async fn touch(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &Entry,
    tags: &[String],
    (ttl_ms, lifetime_ms): (u64, u64),
) -> RedisResult<bool> {
    Ok(on_entry(io, ns, entry, "touch", tags, (ttl_ms, lifetime_ms)).await? == 1)
}

/// How long a tag's version outlives its last invalidation: longer than any
/// computation runs between its lookup and its write.
const TAG_VERSION_MS: u64 = 86_400_000;

/// Invalidates `tags` in every sub-index of every namespace listed in the tagged hash
/// (by any process) whose templates can render one of them: returns the live entries
/// removed. `root` is [`Namespace::tags`]. Whatever else is stored, the cost is one
/// script per sub-index that may carry the tags, plus one per batch of their entries.
pub(crate) async fn invalidate_tags(
    io: &mut impl Io,
    root: &Namespace,
    tags: &[String],
) -> RedisResult<usize> {
    let listed: Vec<(String, String)> = io.query(cmd("HGETALL").arg(root.tagged())).await?;
    let mut removed = 0;
    for (base, listing) in listed {
        let mut lines = listing.split('\n');
        let count = lines.next().and_then(|n| n.parse().ok()).unwrap_or(1);
        let templates: Vec<&str> = lines.collect();
        if memo_core::may_carry(&templates, tags) {
            let ns = Namespace::listed(&base, count, memo_core::Config::global());
            for shard in 0..ns.shard_count() {
                removed += invalidate_tags_in(io, &ns, shard, tags).await?;
            }
        }
    }
    Ok(removed)
}

/// Invalidates `tags` in one sub-index: one script moves their versions on and sets
/// their entries aside (whatever else is stored), then batches of [`DRAIN_BATCH`] remove
/// those entries, so that Redis is never blocked for long by a tag over many entries.
/// If this is interrupted, the next invalidation of the same tag (the retry, or any
/// process's) finishes the removal.
async fn invalidate_tags_in(
    io: &mut impl Io,
    ns: &Namespace,
    shard: usize,
    tags: &[String],
) -> RedisResult<usize> {
    let mut invocation = TAGS.prepare_invoke();
    for tag in tags {
        invocation.key(ns.tag_set(shard, tag));
    }
    for tag in tags {
        invocation.key(ns.tag_version(shard, tag));
    }
    for tag in tags {
        invocation.key(ns.tag_draining(shard, tag));
    }
    invocation.arg(tags.len()).arg(TAG_VERSION_MS);
    let _: i64 = io.invoke(&invocation).await?;
    let mut removed = 0;
    for tag in tags {
        let draining = ns.tag_draining(shard, tag);
        loop {
            let members: Vec<String> = io.query(cmd("SRANDMEMBER").arg(&draining).arg(DRAIN_BATCH)).await?;
            if members.is_empty() {
                break;
            }
            let mut batch = TAG_BATCH.prepare_invoke();
            batch.key(&draining).key(ns.epoch(shard)).key(ns.index(shard)).key(&members);
            let (live, left): (u64, u64) = io.invoke(&batch).await?;
            removed += usize::try_from(live).unwrap_or(usize::MAX);
            if left == 0 {
                break;
            }
        }
    }
    Ok(removed)
}

/// Clears the namespace in a fixed number of round trips, whatever its size (two on a
/// single server: one more per sub-index on a cluster); returns the live entries there
/// were.
///
/// The names the indexes will be renamed to are listed in the drains set first (so that
/// a crash after leaves nothing undrained); then in each sub-index the generation moves
/// on (no fill started before can store), the epoch too (no entry written before is
/// read again), and the index is renamed aside for the background drain
/// ([`drain_batch`]), which removes the old entries in batches.
pub(crate) async fn clear(io: &mut impl Io, ns: &Namespace) -> RedisResult<usize> {
    let unique = unique();
    let draining: Vec<String> = (0..ns.shard_count()).map(|shard| ns.draining(shard, &unique)).collect();
    let _: i64 = io.query(cmd("SADD").arg(ns.drains()).arg(&draining)).await?;
    let (mut live, mut unused) = (0, Vec::new());
    for (shard, draining) in draining.iter().enumerate() {
        let mut invocation = CLEAR.prepare_invoke();
        invocation.key(ns.index(shard)).key(ns.generation(shard)).key(ns.epoch(shard)).key(draining);
        invocation.arg(ns.ttl_ms());
        let cleared: RedisResult<i64> = io.invoke(&invocation).await;
        let cleared = match cleared {
            Err(e) if e.to_string().contains("not an integer") => {
                reset_generation(io, ns, shard).await?;
                io.invoke(&invocation).await?
            }
            other => other?,
        };
        match usize::try_from(cleared) {
            Ok(n) => live += n,
            Err(_) => unused.push(draining),
        }
    }
    if !unused.is_empty() {
        // No index was there to rename: nothing for the drain to do.
        let _: i64 = io.query(cmd("SREM").arg(ns.drains()).arg(unused)).await?;
    }
    Ok(live)
}

/// Keys removed per batch of the background drain: a few milliseconds of Redis.
pub(crate) const DRAIN_BATCH: usize = 500;

/// What one batch of the drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Removed this many old entries; more are left.
    Some(usize),
    /// The index is done and gone: [`forget_draining`] unlists it.
    Done,
    /// There is no such index: not renamed yet by the clear that listed it, or never
    /// (that clear crashed in between).
    Absent,
}

/// Removes one batch of a draining index's old entries.
pub(crate) async fn drain_batch(io: &mut impl Io, draining: &str, epoch: &str) -> RedisResult<Drained> {
    let members: Vec<String> = io.query(cmd("ZRANGE").arg(draining).arg(0).arg(DRAIN_BATCH - 1)).await?;
    let mut invocation = DRAIN.prepare_invoke();
    invocation.key(draining).key(epoch).key(&members);
    let removed: i64 = io.invoke(&invocation).await?;
    Ok(match removed {
        -1 => Drained::Done,
        -2 => Drained::Absent,
        n => Drained::Some(usize::try_from(n).unwrap_or(0)),
    })
}

/// Removes `draining` from the drains set.
pub(crate) async fn forget_draining(io: &mut impl Io, drains: &str, draining: &str) -> RedisResult<()> {
    let _: i64 = io.query(cmd("SREM").arg(drains).arg(draining)).await?;
    Ok(())
}

/// Up to 100 of the draining indexes listed in `drains`.
pub(crate) async fn some_draining(io: &mut impl Io, drains: &str) -> RedisResult<Vec<String>> {
    io.query(cmd("SRANDMEMBER").arg(drains).arg(100)).await
}

/// Removes the strict entries that have every `name=hex` segment of `wanted`, scanning
/// the index in batches; returns how many existed. Matching compares whole segments:
/// no glob is ever built from argument values.
pub(crate) async fn clear_matching(
    io: &mut impl Io,
    ns: &Namespace,
    wanted: &[String],
) -> RedisResult<usize> {
    let mut removed = 0;
    for shard in 0..ns.shard_count() {
        removed += clear_matching_in(io, ns, shard, wanted).await?;
    }
    Ok(removed)
}

/// [`clear_matching`] in one sub-index.
async fn clear_matching_in(
    io: &mut impl Io,
    ns: &Namespace,
    shard: usize,
    wanted: &[String],
) -> RedisResult<usize> {
    advance_generation(io, ns, shard).await?;
    let index = ns.index(shard);
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let (next, members): (u64, Vec<String>) =
            io.query(cmd("ZSCAN").arg(&index).arg(cursor).arg("COUNT").arg(BATCH)).await?;
        // ZSCAN returns member, score pairs.
        let doomed: Vec<String> =
            members.into_iter().step_by(2).filter(|m| has_segments(m, wanted)).collect();
        for chunk in doomed.chunks(BATCH) {
            // Index member first, entry second: a fill that lands in between (it began
            // after the generation moved, so its value is fresh) leaves at worst a
            // member without an entry, which is harmless. The other order could leave
            // an entry without a member, which no later partial clear would find.
            let _: i64 = io.query(cmd("ZREM").arg(&index).arg(chunk)).await?;
            removed += unlink(io, chunk, false).await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(removed)
}

/// How long `flush_all` keeps a generation counter: long enough that no fill started
/// before the flush is still running, after which the counter stops taking space.
const GENERATION_AFTER_FLUSH_MS: u64 = 3_600_000;

/// Advances the clear generation of sub-index `shard`, so that no fill started before
/// can store there. A counter that holds something other than a number (written by
/// hand, or by another program) is reset to a value no fill can have read: the time in
/// nanoseconds.
pub(crate) async fn advance_generation(io: &mut impl Io, ns: &Namespace, shard: usize) -> RedisResult<()> {
    let advanced: RedisResult<i64> = io.query(cmd("INCR").arg(ns.generation(shard))).await;
    match advanced {
        Err(e) if e.to_string().contains("not an integer") => reset_generation(io, ns, shard).await,
        other => other.map(drop),
    }
}

/// Sets a generation that holds something other than a number to a value no fill can
/// have read: the time in nanoseconds.
async fn reset_generation(io: &mut impl Io, ns: &Namespace, shard: usize) -> RedisResult<()> {
    let fresh = i64::try_from(super::wall_nanos()).unwrap_or(i64::MAX / 2).max(1);
    let key = ns.generation(shard);
    tracing::warn!(key, "memo-alchemy: a clear generation held no number; reset");
    io.query(cmd("SET").arg(&key).arg(fresh)).await
}

/// Removes the entries, indexes and draining leftovers under `pattern` (an escaped
/// prefix glob) on one server (a cluster's primaries are swept one by one, with
/// `by_slot`: a command's keys must then share a hash slot). Generation counters are
/// not deleted, which would let an in-flight fill of this program store again, but
/// expire an hour later; nor are the keys in `keep` (the tagged hash, the bus's
/// counter). Counts nothing: the functions' own clears, which
/// `flush_all` runs first, counted their live entries, and their old keys may still be
/// here waiting for the drain.
pub(crate) async fn sweep(
    io: &mut impl Io,
    pattern: &str,
    keep: &[String],
    by_slot: bool,
) -> RedisResult<usize> {
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            io.query(cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(BATCH)).await?;
        // Generations and epochs only ever move forward: they are left to expire.
        let (generations, keys): (Vec<String>, Vec<String>) = keys
            .into_iter()
            .filter(|k| !keep.contains(k))
            .partition(|k| k.ends_with(":g") || k.ends_with(":e"));
        for generation in &generations {
            let _: i64 = io.query(cmd("PEXPIRE").arg(generation).arg(GENERATION_AFTER_FLUSH_MS)).await?;
        }
        if !keys.is_empty() {
            unlink(io, &keys, by_slot).await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(0)
}

/// How many entries of the namespace are live: the index members written within the
/// function's longest lifetime by Redis's clock (all of them without expiry). With
/// `expire_jitter`, entries given a shorter lifetime may still be counted a while.
pub(crate) async fn live(io: &mut impl Io, ns: &Namespace) -> RedisResult<usize> {
    let since = match ns.ttl_ms() {
        0 => None,
        ttl => {
            // Members are scored with Redis's clock (the write script's `TIME`).
            let (secs, micros): (u64, u64) = io.query(&cmd("TIME")).await?;
            Some((secs * 1000 + micros / 1000).saturating_sub(ttl))
        }
    };
    let mut count: u64 = 0;
    for shard in 0..ns.shard_count() {
        let n: u64 = match since {
            None => io.query(cmd("ZCARD").arg(ns.index(shard))).await?,
            Some(since) => {
                io.query(cmd("ZCOUNT").arg(ns.index(shard)).arg(format!("({since}")).arg("+inf")).await?
            }
        };
        count += n;
    }
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// Unlinks `keys`: in one command, or with `by_slot` one per hash slot among them.
async fn unlink(io: &mut impl Io, keys: &[String], by_slot: bool) -> RedisResult<usize> {
    let mut groups: Vec<(u16, Vec<&String>)> = Vec::new();
    for key in keys {
        let slot = if by_slot { key_slot(key) } else { 0 };
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(key),
            None => groups.push((slot, vec![key])),
        }
    }
    let mut removed = 0;
    for (_, group) in groups {
        let n: u64 = io.query(cmd("UNLINK").arg(group)).await?;
        removed += usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(removed)
}

/// A unique suffix for a draining index: the time in nanoseconds (see
/// [`listed_at_nanos`]), the process and a counter, so that processes that share a pid
/// (containers) or restart never collide.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = super::wall_nanos();
    format!("{nanos:x}-{}-{}", std::process::id(), NEXT.fetch_add(1, Relaxed))
}

/// When the draining index `draining` was listed, in nanoseconds by its clear's wall clock.
pub(crate) fn listed_at_nanos(draining: &str) -> Option<u128> {
    let (_, unique) = draining.rsplit_once(":i:draining:")?;
    u128::from_str_radix(unique.split('-').next()?, 16).ok()
}

/// Publishes `message` on `channel`, numbered by the counter `sequence`.
pub(crate) async fn publish(
    io: &mut impl Io,
    sequence: &str,
    channel: &str,
    message: &str,
) -> RedisResult<()> {
    let mut invocation = PUBLISH.prepare_invoke();
    invocation.key(sequence).arg(channel).arg(message);
    let _number: i64 = io.invoke(&invocation).await?;
    Ok(())
}
