//! The store's operations, written once over [`Io`] for blocking and `async` callers.

use redis::{cmd, RedisResult};

use super::conn::Io;
use super::namespace::{has_segments, Namespace};
use super::script::WRITE;

/// Keys removed per round trip by clears: small enough that Redis never stalls.
const BATCH: usize = 1000;

/// The value of `entry`, if any, and the namespace's clear generation: one `MGET`.
pub(crate) async fn lookup(
    io: &mut impl Io,
    ns: &Namespace,
    entry: &str,
) -> RedisResult<(Option<Vec<u8>>, String)> {
    let (value, generation): (Option<Vec<u8>>, Option<String>) =
        io.query(cmd("MGET").arg(entry).arg(ns.generation())).await?;
    Ok((value, generation.unwrap_or_else(|| "0".to_owned())))
}

/// What one write asks of the script.
pub(crate) struct Write<'a> {
    pub(crate) entry: &'a str,
    pub(crate) value: &'a [u8],
    pub(crate) ttl_ms: u64,
    pub(crate) limit: u64,
    pub(crate) generation: &'a str,
}

/// Stores a value unless a clear happened since `generation`: returns the entries
/// evicted, or `None` when the write was refused.
pub(crate) async fn write(io: &mut impl Io, ns: &Namespace, w: &Write<'_>) -> RedisResult<Option<u64>> {
    let mut invocation = WRITE.prepare_invoke();
    invocation.key(w.entry).key(ns.index()).key(ns.generation());
    invocation.arg(w.value).arg(w.ttl_ms).arg(w.limit).arg(w.generation);
    let evicted: i64 = io.invoke(&invocation).await?;
    Ok(u64::try_from(evicted).ok())
}

/// Removes every entry of the namespace, in batches; returns how many existed.
///
/// The generation goes up first, so that no fill started before can store after. The
/// index is then renamed aside and drained: fills that land meanwhile start a fresh
/// index, and the drain ends even under a steady stream of writes.
pub(crate) async fn clear(io: &mut impl Io, ns: &Namespace) -> RedisResult<usize> {
    advance_generation(io, ns).await?;
    let draining = format!("{}:draining:{}", ns.index(), unique());
    let renamed: RedisResult<()> = io.query(cmd("RENAME").arg(ns.index()).arg(&draining)).await;
    if let Err(e) = renamed {
        // No index: nothing was ever stored, or it was cleared already.
        return if e.to_string().contains("no such key") { Ok(0) } else { Err(e) };
    }
    let mut removed = 0;
    loop {
        let batch: Vec<String> = io.query(cmd("ZRANGE").arg(&draining).arg(0).arg(BATCH - 1)).await?;
        if batch.is_empty() {
            break;
        }
        removed += unlink(io, &batch).await?;
        let _: i64 = io.query(cmd("ZREM").arg(&draining).arg(&batch)).await?;
    }
    let _: i64 = io.query(cmd("UNLINK").arg(&draining)).await?;
    Ok(removed)
}

/// Removes the strict entries that have every `name=hex` segment of `wanted`, scanning
/// the index in batches; returns how many existed. Matching compares whole segments:
/// no glob is ever built from argument values.
pub(crate) async fn clear_matching(
    io: &mut impl Io,
    ns: &Namespace,
    wanted: &[String],
) -> RedisResult<usize> {
    advance_generation(io, ns).await?;
    let index = ns.index();
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
            removed += unlink(io, chunk).await?;
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

/// Advances the namespace's clear generation, so that no fill started before can store.
/// A counter that holds something other than a number (written by hand, or by another
/// program) is reset to a value no fill can have read: the time in nanoseconds.
async fn advance_generation(io: &mut impl Io, ns: &Namespace) -> RedisResult<()> {
    let advanced: RedisResult<i64> = io.query(cmd("INCR").arg(ns.generation())).await;
    match advanced {
        Err(e) if e.to_string().contains("not an integer") => {
            let fresh = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX / 2));
            tracing::warn!(key = ns.generation(), "memo-alchemy: a clear generation held no number; reset");
            io.query(cmd("SET").arg(ns.generation()).arg(fresh)).await
        }
        other => other.map(drop),
    }
}

/// Removes the entries, indexes and draining leftovers under `pattern` (an escaped
/// prefix glob). Generation counters are not deleted, which would let an in-flight
/// fill of this program store again, but expire an hour later. Returns the entries
/// removed.
pub(crate) async fn sweep(io: &mut impl Io, pattern: &str) -> RedisResult<usize> {
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            io.query(cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(BATCH)).await?;
        let (generations, keys): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|k| k.ends_with(":g"));
        for generation in &generations {
            let _: i64 = io.query(cmd("PEXPIRE").arg(generation).arg(GENERATION_AFTER_FLUSH_MS)).await?;
        }
        let (entries, others): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| k.contains(":k:"));
        if !entries.is_empty() {
            removed += unlink(io, &entries).await?;
        }
        if !others.is_empty() {
            unlink(io, &others).await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(removed)
}

/// How many entries of the namespace are live: the index members written less than
/// `ttl_ms` ago by Redis's clock (all of them without expiry).
pub(crate) async fn live(io: &mut impl Io, ns: &Namespace, ttl_ms: Option<u64>) -> RedisResult<usize> {
    let count: u64 = match ttl_ms {
        Some(ttl) => {
            // Members are scored with Redis's clock (the write script's `TIME`).
            let (secs, micros): (u64, u64) = io.query(&cmd("TIME")).await?;
            let since = (secs * 1000 + micros / 1000).saturating_sub(ttl);
            io.query(cmd("ZCOUNT").arg(ns.index()).arg(format!("({since}")).arg("+inf")).await?
        }
        None => io.query(cmd("ZCARD").arg(ns.index())).await?,
    };
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

async fn unlink(io: &mut impl Io, keys: &[String]) -> RedisResult<usize> {
    let n: u64 = io.query(cmd("UNLINK").arg(keys)).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// A process-unique suffix for a draining index.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Relaxed))
}

/// Publishes `message` on `channel`.
pub(crate) async fn publish(io: &mut impl Io, channel: &str, message: &str) -> RedisResult<()> {
    let _receivers: i64 = io.query(cmd("PUBLISH").arg(channel).arg(message)).await?;
    Ok(())
}
