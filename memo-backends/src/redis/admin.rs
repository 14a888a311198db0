//! Operators' entry points, for the `memo-alchemy` CLI: what the json and pickle
//! functions keep in Redis under the configured prefix, found from the keys alone (no
//! program's code is needed), and clears that go through the library's own logic, so
//! that a running program's fills never store a value computed before the clear.
//!
//! Every function here uses the installed [`Config`] (`Config::global`): its key
//! prefix, and the single server or the cluster (whose primaries are each scanned).
//! A `distributed_memory` function keeps nothing in Redis, so it is never found here;
//! tag invalidations reach it through [`crate::DistributedMemoryBackend`]'s bus.

use std::collections::BTreeMap;

use memo_core::{Config, Error};
use parking_lot::Mutex;
use redis::{cmd, ConnectionLike, RedisResult};

use super::conn::{block, Io, Redis, SyncIo};
use super::namespace::{drains, glob_escape, shard_prefixes, unstamp, untag, Namespace, MAX_SHARDS};
use super::pending::{invalidate, Target, What};

/// The backends whose namespaces can appear in a key (postgres: in a row's namespace).
const BACKENDS: [&str; 4] = ["json", "pickle", "distributed_memory", "postgres"];
/// What follows a sub-index in its keys (see the key layout in the `namespace` module).
const SUFFIXES: [&str; 7] = ["k", "i", "g", "e", "tag", "tagv", "tagdrain"];
/// Keys read per round trip of a scan.
const BATCH: usize = 1000;

/// One key under the prefix, by its place in the key layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName {
    /// The function's namespace: `{prefix}:{function prefix or _}:{backend}:{path}:{fingerprint}`.
    pub namespace: String,
    /// The backend named in the namespace.
    pub backend: String,
    /// The function's path (`crate::module::function`).
    pub path: String,
    /// The sub-index the key belongs to: the namespace itself, or on a cluster the
    /// namespace followed by `:{hash tag}`.
    pub sub_index: String,
    /// What follows the sub-index: `k:{arguments}` for an entry, `i`, `g`, `e`, `tag:…`, ….
    pub suffix: String,
}

impl KeyName {
    /// The encoded arguments of an entry key (`hex`, or `name=hex:name=hex` for strict
    /// keys); `None` for another key.
    pub fn arguments(&self) -> Option<&str> {
        self.suffix.strip_prefix("k:")
    }
}

/// Where `key` sits in the key layout under `prefix`; `None` for a key of the library's
/// own (`{prefix}:__memo:…`) or one that does not follow the layout.
pub fn parse_key(prefix: &str, key: &str) -> Option<KeyName> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(':')?;
    if rest.starts_with("__memo:") {
        return None;
    }
    let segments: Vec<&str> = rest.split(':').collect();
    // The fingerprint: 16 hex digits, followed by nothing, a hash tag or a suffix.
    let at = (2..segments.len()).find(|&i| {
        let s = segments[i];
        s.len() == 16
            && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && segments.get(i + 1).is_none_or(|next| SUFFIXES.contains(next) || next.starts_with('{'))
    })?;
    let backend_at = (1..at).find(|&i| BACKENDS.contains(&segments[i]))?;
    let namespace = format!("{prefix}:{}", segments[..=at].join(":"));
    let path = segments[backend_at + 1..at].join(":");
    let mut sub_index = namespace.clone();
    let mut tail = &segments[at + 1..];
    if let Some(tag) = tail.first().filter(|t| t.starts_with('{') && t.ends_with('}')) {
        sub_index = format!("{namespace}:{tag}");
        tail = &tail[1..];
    }
    Some(KeyName {
        namespace,
        backend: segments[backend_at].to_owned(),
        path,
        sub_index,
        suffix: tail.join(":"),
    })
}

/// A function found in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredFunction {
    /// Its namespace (see [`KeyName::namespace`]).
    pub namespace: String,
    /// Its backend: `json` or `pickle`.
    pub backend: String,
    /// Its path.
    pub path: String,
    /// Its sub-indexes: on a cluster every one its sub-index count gives, whether it
    /// holds keys or not (see the `Namespace` layout).
    pub sub_indexes: Vec<String>,
    /// Its live entries: those whose value carries its sub-index's current epoch.
    pub entries: u64,
    /// The bytes of the live entries' values.
    pub bytes: u64,
    /// Its tag templates, when it is listed in the tagged hash.
    pub tags: Vec<String>,
}

/// An entry found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its key.
    pub key: String,
    /// Its function's namespace.
    pub namespace: String,
    /// Its encoded arguments (see [`KeyName::arguments`]).
    pub arguments: String,
    /// The bytes of its value.
    pub bytes: u64,
}

/// What a scan of the prefix found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The functions with entries or an index, by namespace.
    pub functions: Vec<StoredFunction>,
    /// The live entries.
    pub entries: Vec<StoredEntry>,
    /// Every key under the prefix.
    pub keys: u64,
    /// The library's own keys among them (`{prefix}:__memo:…`).
    pub library_keys: u64,
    /// Entry keys whose value is from an older epoch (cleared, waiting for the drain).
    pub stale_keys: u64,
}

/// What one server held.
#[derive(Default)]
struct Found {
    /// Sub-index → (namespace parts, entry keys).
    sub_indexes: BTreeMap<String, (KeyName, Vec<String>, bool)>,
    keys: u64,
    library_keys: u64,
}

/// Scans every key under the configured prefix (on each primary of a cluster),
/// calling `progress` with the keys seen so far; reads each entry's epoch tag and
/// size, in batches.
pub fn scan(progress: &(dyn Fn(u64) + Sync)) -> Result<Scan, Error> {
    let config = Config::global();
    let prefix = config.key_prefix().to_owned();
    let pattern = format!("{}:*", glob_escape(&prefix));
    let redis = Redis::global();
    let seen = Mutex::new(0u64);
    let scans = Mutex::new(Vec::new());
    redis
        .on_every_primary(|io, _| {
            let SyncIo::Single(conn) = io else {
                return Err(redis::RedisError::from((redis::ErrorKind::Client, "no direct connection")));
            };
            let found = scan_server(*conn, &prefix, &pattern, &|n| {
                let mut seen = seen.lock();
                *seen += n;
                progress(*seen);
            })?;
            let mut partial = Scan::default();
            collect(*conn, found, &mut partial)?;
            scans.lock().push(partial);
            Ok(0)
        })
        .map_err(|m| redis.error("redis", "scan", m))?;
    let tagged: Vec<(String, String)> = redis
        .run(|io| block(io.query(cmd("HGETALL").arg(Namespace::tags(config).tagged()))))
        .map_err(|m| redis.error("redis", "scan", m))?;
    let mut all = Scan::default();
    let mut functions: BTreeMap<String, StoredFunction> = BTreeMap::new();
    for partial in scans.into_inner() {
        all.keys += partial.keys;
        all.library_keys += partial.library_keys;
        all.stale_keys += partial.stale_keys;
        all.entries.extend(partial.entries);
        for f in partial.functions {
            let into = functions.entry(f.namespace.clone()).or_insert_with(|| StoredFunction {
                namespace: f.namespace.clone(),
                backend: f.backend.clone(),
                path: f.path.clone(),
                ..StoredFunction::default()
            });
            into.sub_indexes.extend(f.sub_indexes);
            into.entries += f.entries;
            into.bytes += f.bytes;
        }
    }
    for (base, listing) in tagged {
        if let Some(f) = functions.get_mut(&base) {
            f.tags = listing.split('\n').skip(1).map(str::to_owned).collect();
        }
    }
    all.functions = functions.into_values().collect();
    for f in &mut all.functions {
        f.sub_indexes.sort();
        if redis.is_cluster() {
            f.sub_indexes = every_sub_index(&f.namespace, f.sub_indexes.clone());
        }
    }
    all.entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(all)
}

/// Every sub-index of a namespace on a cluster, from those `found` holding keys: those
/// of each sub-index count whose hash tags include every one found (a function's count
/// follows from its `limit`, which the store does not hold; almost always one count
/// fits, and if several do, clearing them all is safe). A clear must reach the empty
/// sub-indexes too, where a fill that began before it could otherwise store. `found`
/// itself when no count fits (keys written by another layout).
fn every_sub_index(namespace: &str, found: Vec<String>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for count in 1..=MAX_SHARDS {
        let prefixes = shard_prefixes(namespace, count, true);
        if found.iter().all(|s| prefixes.contains(s)) {
            all.extend(prefixes.into_iter().filter(|p| !all.contains(p)).collect::<Vec<_>>());
        }
    }
    if all.is_empty() {
        found
    } else {
        all
    }
}

/// The keys of one server under `pattern`, by sub-index.
fn scan_server(
    conn: &mut (dyn ConnectionLike + Send),
    prefix: &str,
    pattern: &str,
    progress: &dyn Fn(u64),
) -> RedisResult<Found> {
    let mut found = Found::default();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(BATCH).query(conn)?;
        progress(keys.len() as u64);
        for key in keys {
            found.keys += 1;
            let Some(name) = parse_key(prefix, &key) else {
                found.library_keys += 1;
                continue;
            };
            let is_entry = name.arguments().is_some();
            let content = is_entry || name.suffix == "i";
            let slot = found
                .sub_indexes
                .entry(name.sub_index.clone())
                .or_insert_with(|| (name.clone(), Vec::new(), false));
            slot.2 |= content;
            if is_entry {
                slot.1.push(key);
            }
        }
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// Reads the epochs of `found`'s sub-indexes and the epoch tag and size of each entry.
fn collect(conn: &mut (dyn ConnectionLike + Send), found: Found, into: &mut Scan) -> RedisResult<()> {
    into.keys += found.keys;
    into.library_keys += found.library_keys;
    for (sub_index, (name, entries, content)) in found.sub_indexes {
        if !content {
            continue;
        }
        let epoch: Option<String> = cmd("GET").arg(format!("{sub_index}:e")).query(conn)?;
        let epoch = epoch.unwrap_or_else(|| "0".to_owned());
        let mut function = StoredFunction {
            namespace: name.namespace.clone(),
            backend: name.backend.clone(),
            path: name.path.clone(),
            sub_indexes: vec![sub_index.clone()],
            ..StoredFunction::default()
        };
        for chunk in entries.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("GETRANGE").arg(key).arg(0).arg(40).cmd("STRLEN").arg(key);
            }
            let answers: Vec<(Vec<u8>, u64)> = {
                let flat: Vec<redis::Value> = pipe.query(conn)?;
                flat.chunks(2)
                    .map(|pair| {
                        let head: Vec<u8> = redis::from_redis_value(pair[0].clone()).unwrap_or_default();
                        let len: u64 = redis::from_redis_value(pair[1].clone()).unwrap_or(0);
                        (head, len)
                    })
                    .collect()
            };
            for (key, (head, len)) in chunk.iter().zip(answers) {
                if !matches!(untag(&head, &epoch), Ok(Some(_))) {
                    into.stale_keys += 1;
                    continue;
                }
                function.entries += 1;
                function.bytes += len;
                let arguments = key.rsplit_once(":k:").map_or("", |(_, a)| a);
                // Strict keys hold `:`: everything after the sub-index's `:k:`.
                let arguments = key.strip_prefix(&format!("{sub_index}:k:")).unwrap_or(arguments);
                into.entries.push(StoredEntry {
                    key: key.clone(),
                    namespace: name.namespace.clone(),
                    arguments: arguments.to_owned(),
                    bytes: len,
                });
            }
        }
        into.functions.push(function);
    }
    Ok(())
}

/// One entry, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// Its key, by its place in the layout.
    pub name: KeyName,
    /// The ms Redis keeps it, `None` for no expiry.
    pub ttl_ms: Option<u64>,
    /// The bytes of its stored value (tags included).
    pub bytes: u64,
    /// Whether it carries its sub-index's current epoch (a cleared entry does not).
    pub live: bool,
    /// When it was written (Redis's clock, ms since the epoch), when stamped (`stale`
    /// or `refresh`).
    pub written_ms: Option<u64>,
    /// The encoded value, without its epoch tag and stamp.
    pub payload: Vec<u8>,
}

/// Reads the entry `key`; `None` when there is no such key.
pub fn inspect(key: &str) -> Result<Option<Inspected>, Error> {
    let config = Config::global();
    let redis = Redis::global();
    let fail = |m: String| redis.error("redis", "inspect", m);
    let name = parse_key(config.key_prefix(), key)
        .filter(|n| n.arguments().is_some())
        .ok_or_else(|| fail(format!("{key} is not an entry key under the prefix {}", config.key_prefix())))?;
    let (value, ttl, epoch): (Option<Vec<u8>>, i64, Option<String>) = redis
        .run(|io| {
            block(async {
                let value = io.query(cmd("GET").arg(key)).await?;
                let ttl = io.query(cmd("PTTL").arg(key)).await?;
                let epoch = io.query(cmd("GET").arg(format!("{}:e", name.sub_index))).await?;
                Ok((value, ttl, epoch))
            })
        })
        .map_err(fail)?;
    let Some(value) = value else { return Ok(None) };
    let epoch = epoch.unwrap_or_else(|| "0".to_owned());
    let (live, payload) = match untag(&value, &epoch) {
        Ok(Some(payload)) => (true, payload),
        _ => (false, strip_epoch(&value)),
    };
    let (written_ms, payload) = match unstamp(payload) {
        Some((written, rest)) => (Some(written), rest),
        None => (None, payload),
    };
    Ok(Some(Inspected {
        name,
        ttl_ms: u64::try_from(ttl).ok(),
        bytes: value.len() as u64,
        live,
        written_ms,
        payload: payload.to_vec(),
    }))
}

/// A value without its `e{epoch}|` tag, whatever the epoch.
fn strip_epoch(value: &[u8]) -> &[u8] {
    match untag(value, "") {
        Err(()) => value,
        Ok(_) => value.iter().position(|b| *b == b'|').map_or(value, |bar| &value[bar + 1..]),
    }
}

/// Clears everything of `function` as its own clear would (the library's full clear:
/// the generation and epoch of each sub-index move on, so no fill that began before
/// stores and no entry written before is read; the indexes are set aside for the
/// drain); returns the live entries there were.
pub fn clear(function: &StoredFunction) -> Result<usize, Error> {
    let config = Config::global();
    let ns = Namespace::found(&function.namespace, function.sub_indexes.clone(), config);
    let target = if function.backend == "distributed_memory" { Target::Bus } else { Target::Store };
    invalidate(&ns, target, What::All).map_err(|m| Redis::global().error("redis", "clear", m))
}

/// Removes the old entries of every cleared index now (the drain a running program
/// would do in the background), until none is left or Redis fails.
pub fn drain() {
    super::drain::drain_all(&drains(Config::global()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_by_their_layout() {
        let strict =
            parse_key("memo", "memo:_:json:app::geo::population:00112233445566ff:k:city=05:year=e80f")
                .expect("an entry key");
        assert_eq!(strict.namespace, "memo:_:json:app::geo::population:00112233445566ff");
        assert_eq!((strict.backend.as_str(), strict.path.as_str()), ("json", "app::geo::population"));
        assert_eq!(strict.sub_index, strict.namespace);
        assert_eq!(strict.arguments(), Some("city=05:year=e80f"));

        let sharded =
            parse_key("my:app", "my:app:v2:pickle:m::f:0123456789abcdef:{7f3a}:i").expect("an index");
        assert_eq!(sharded.namespace, "my:app:v2:pickle:m::f:0123456789abcdef");
        assert_eq!(sharded.sub_index, "my:app:v2:pickle:m::f:0123456789abcdef:{7f3a}");
        assert_eq!((sharded.suffix.as_str(), sharded.arguments()), ("i", None));

        assert_eq!(parse_key("memo", "memo:__memo:tagged"), None);
        assert_eq!(parse_key("memo", "memos:_:json:f:0123456789abcdef:i"), None);
        assert_eq!(parse_key("memo", "memo:something:else"), None);
    }
}
