//! Key layout in Redis.
//!
//! ```text
//! {config prefix}:{function prefix or _}:{backend}:{function path}:{fingerprint}   the namespace (N)
//! N, or on a cluster N:{{slot tag}}                                                 a sub-index (S)
//!   S:k:{hex of the postcard-encoded argument tuple}                               an entry (non-strict)
//!   S:k:{name}={hex}:{name}={hex}                                                  an entry (strict)
//!   S:i                                                                            the index (ZSET)
//!   S:g                                                                            the clear generation
//!   S:e                                                                            the entry epoch
//!   S:i:draining:{unique}                                                          a cleared index, draining
//!   S:tag:{tag}                                                                    its entries carrying a tag (SET)
//!   S:tagv:{tag}                                                                   a tag's version
//!   S:tagdrain:{tag}                                                               a tag's entries being removed (SET)
//! {config prefix}:__memo:drains                                                    the draining indexes (SET)
//! {config prefix}:__memo:tagged                                                    the namespaces that carry tags (HASH)
//! ```
//!
//! A function's entries are split between sub-indexes by a hash of their arguments:
//! one on a single server (whose keys are the namespace's own), up to [`MAX_SHARDS`] on
//! a Redis Cluster, each with its own hash tag, chosen so that the sub-indexes spread
//! evenly over the hash slots (and so over the primaries). Every operation that touches
//! several keys (the write script, clears, tags) stays within one sub-index, so within
//! one hash slot. The `limit` is split between the sub-indexes, each evicting its own
//! oldest entries.
//!
//! Tags: the write script adds the entry to each of its tags' sets in its sub-index, if
//! no tag's version there moved since the lookup read it (the lookup's `MGET` reads them
//! beside the value). A function with tags lists its namespace in the tagged hash
//! (with its sub-index count and templates) before its first lookup, so that an
//! invalidation in any process finds every sub-index that may carry a tag: it moves the
//! tag's version on in each (no fill that began before can store), then sets the tag's
//! set aside (renamed to its draining set) and removes those entries in batches. A tag
//! set lives as long as its longest lived entry, and each write drops up to two members
//! whose entry is gone.
//!
//! An entry's value is `e{epoch}|` then the encoded value: only values of the current
//! epoch are read. A full clear moves the epoch on (every entry is unreadable at once),
//! renames the index aside, listed first in the drains set, where a background drain in
//! any process removes its old entries in batches. The generation moves on with every
//! clear, full or partial: a fill that began before cannot store.
//!
//! Arguments are hex-encoded postcard bytes, so they never contain `:`, `=` or a glob
//! character, and two argument lists never share a key. The fingerprint hashes the
//! signature as written, so a changed argument or return type starts a new namespace.

use memo_core::{CachedFunction, Config};

/// The most sub-indexes of one function on a cluster.
pub(crate) const MAX_SHARDS: usize = 16;
/// The fewest entries a sub-index of a function with a `limit` holds.
const SHARD_SIZE: usize = 1000;
/// Redis Cluster's hash slots.
const SLOTS: u16 = 16384;

pub(crate) use crate::keys::{fnv1a, hex, selected};

/// One function's keys.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    base: String,
    /// The key prefix of each sub-index.
    shards: Vec<String>,
    /// The `limit` of each sub-index, 0 for none.
    limits: Vec<u64>,
    /// The longest time the function's entries are kept in ms (`expire` plus its
    /// jitter, plus `stale`), 0 for none: live entries are among the index members written less than this long
    /// ago.
    ttl_ms: u64,
    drains: String,
    /// `{config prefix}:__memo`, under which the library's own keys live.
    root: String,
    /// The function's tag templates: a pending tag invalidation that one of them can
    /// match blocks the function's reads.
    templates: &'static [&'static str],
}

/// The key of one entry, and the sub-index it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) shard: usize,
}

impl Namespace {
    pub(crate) fn of(function: &'static CachedFunction, config: &Config) -> Namespace {
        let policy = function.policy(config);
        let limit = policy.limit.max();
        let cluster = !config.redis_cluster_urls().is_empty();
        let count = shard_count(limit, cluster);
        let mut fingerprint = crate::keys::fingerprint(function, config);
        if cluster {
            // The layout depends on the sub-index count (so on `limit`): processes that
            // disagree on it use two namespaces, each consistent, never one namespace
            // with two layouts that each other's clears would miss.
            fingerprint = fnv1a(format!("{fingerprint:016x}|sub-indexes={count}").as_bytes());
        }
        let base = format!(
            "{}:{}:{}:{}:{fingerprint:016x}",
            config.key_prefix(),
            function.key_prefix().unwrap_or("_"),
            function.backend(),
            function.path(),
        );
        Namespace {
            shards: shard_prefixes(&base, count, cluster),
            limits: (0..count)
                .map(|i| {
                    crate::memory::share(limit, count, i).map_or(0, |l| u64::try_from(l).unwrap_or(u64::MAX))
                })
                .collect(),
            base,
            ttl_ms: policy.max_retention_ms().unwrap_or(0),
            drains: drains(config),
            root: root(config),
            templates: function.tags(),
        }
    }

    /// The pseudo-namespace of every `local` tier: a full clear of it, on the bus, drops
    /// every process's tiers (after `flush_all`).
    pub(crate) fn every_tier(config: &Config) -> Namespace {
        Namespace { base: String::new(), ..Namespace::tags(config) }
    }

    /// The pseudo-namespace of tag invalidations, which the retry queue keeps.
    pub(crate) fn tags(config: &Config) -> Namespace {
        Namespace {
            base: format!("{}:tags", root(config)),
            shards: Vec::new(),
            limits: Vec::new(),
            ttl_ms: 0,
            drains: drains(config),
            root: root(config),
            templates: &[],
        }
    }

    /// The sub-indexes of a namespace listed in the tagged hash: `base` with `count` of them.
    pub(crate) fn listed(base: &str, count: usize, config: &Config) -> Namespace {
        let mut ns = Namespace::tags(config);
        ns.shards = shard_prefixes(base, count, !config.redis_cluster_urls().is_empty());
        ns.base = base.to_owned();
        ns
    }

    /// A namespace found in the store by its keys: `base` with the sub-index prefixes
    /// `shards` (for the admin clears, which know no function's code).
    pub(crate) fn found(base: &str, shards: Vec<String>, config: &Config) -> Namespace {
        let mut ns = Namespace::tags(config);
        ns.limits = vec![0; shards.len()];
        ns.shards = shards;
        ns.base = base.to_owned();
        ns
    }

    /// Whether one of the function's tag templates can render one of `tags`.
    pub(crate) fn may_carry(&self, tags: &[String]) -> bool {
        memo_core::may_carry(self.templates, tags)
    }

    /// The function's entry in the tagged hash: its sub-index count and templates,
    /// one per line.
    pub(crate) fn listing(&self) -> String {
        let mut listing = self.shards.len().to_string();
        for template in self.templates {
            listing.push('\n');
            listing.push_str(template);
        }
        listing
    }

    /// The hash of the namespaces that carry tags.
    pub(crate) fn tagged(&self) -> String {
        format!("{}:tagged", self.root)
    }

    /// How many sub-indexes there are.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The set of the entries of sub-index `shard` carrying `tag`.
    pub(crate) fn tag_set(&self, shard: usize, tag: &str) -> String {
        format!("{}:tag:{tag}", self.shards[shard])
    }

    /// The entries of `tag` in sub-index `shard` that an invalidation set aside and is
    /// removing.
    pub(crate) fn tag_draining(&self, shard: usize, tag: &str) -> String {
        format!("{}:tagdrain:{tag}", self.shards[shard])
    }

    /// The version of `tag` in sub-index `shard`, moved on by each invalidation.
    pub(crate) fn tag_version(&self, shard: usize, tag: &str) -> String {
        format!("{}:tagv:{tag}", self.shards[shard])
    }

    pub(crate) fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// The `limit` of sub-index `shard`, 0 for none.
    pub(crate) fn limit(&self, shard: usize) -> u64 {
        self.limits[shard]
    }

    pub(crate) fn epoch(&self, shard: usize) -> String {
        format!("{}:e", self.shards[shard])
    }

    pub(crate) fn drains(&self) -> &str {
        &self.drains
    }

    /// A unique name to rename the index of `shard` to when it is cleared.
    pub(crate) fn draining(&self, shard: usize, unique: &str) -> String {
        format!("{}:i:draining:{unique}", self.shards[shard])
    }

    /// The key of the entry whose arguments encode to `segments` (see the module docs).
    pub(crate) fn entry(&self, segments: &str) -> Entry {
        let shard = match self.shards.len() {
            1 => 0,
            n => usize::try_from(fnv1a(segments.as_bytes()) % n as u64).unwrap_or(0),
        };
        Entry { key: format!("{}:k:{segments}", self.shards[shard]), shard }
    }

    /// The lease key of `entry` (`single_flight = "global"`), in its hash slot.
    pub(crate) fn lease(&self, entry: &Entry) -> String {
        let shard = &self.shards[entry.shard];
        let segments = entry.key.get(shard.len() + 3..).unwrap_or_default();
        format!("{shard}:l:{segments}")
    }

    /// The entry whose key is `key` (one of [`entry`](Namespace::entry)'s).
    pub(crate) fn entry_of_key(&self, key: &str) -> Option<Entry> {
        let (prefix, _) = key.rsplit_once(":k:")?;
        let shard = self.shards.iter().position(|s| s == prefix)?;
        Some(Entry { key: key.to_owned(), shard })
    }

    /// The namespace itself, which invalidation messages name.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn index(&self, shard: usize) -> String {
        format!("{}:i", self.shards[shard])
    }

    pub(crate) fn generation(&self, shard: usize) -> String {
        format!("{}:g", self.shards[shard])
    }
}

/// How many sub-indexes a function with `limit` has: one on a single server; on a
/// cluster, enough that each holds [`SHARD_SIZE`] entries or more, at most [`MAX_SHARDS`].
fn shard_count(limit: Option<usize>, cluster: bool) -> usize {
    match (cluster, limit) {
        (false, _) => 1,
        (true, None) => MAX_SHARDS,
        (true, Some(l)) => (l / SHARD_SIZE).clamp(1, MAX_SHARDS),
    }
}

/// The key prefixes of `count` sub-indexes of the namespace `base`: `base` itself on a
/// single server (one sub-index); on a cluster each with a hash tag, the `i`-th chosen
/// to fall in the `i`-th of `count` equal ranges of hash slots, so that the sub-indexes
/// spread over the primaries as evenly as the slots do.
pub(crate) fn shard_prefixes(base: &str, count: usize, cluster: bool) -> Vec<String> {
    if !cluster {
        return vec![base.to_owned()];
    }
    let seed = fnv1a(base.as_bytes());
    let count = u32::try_from(count).unwrap_or(1).max(1);
    let width = u32::from(SLOTS) / count;
    (0..count)
        .map(|i| {
            let wanted = i * width..(i + 1) * width;
            let tag = (0u64..)
                .map(|n| format!("{:x}", seed.wrapping_add(n)))
                .find(|tag| wanted.contains(&u32::from(slot(tag.as_bytes()))))
                .unwrap_or_default();
            format!("{base}:{{{tag}}}")
        })
        .collect()
}

/// The hash slot of a key's hash tag (CRC16/XMODEM, modulo the slot count).
fn slot(tag: &[u8]) -> u16 {
    let crc = tag.iter().fold(0u16, |crc, b| {
        let mut crc = crc ^ (u16::from(*b) << 8);
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
        crc
    });
    crc % SLOTS
}

/// The hash slot of `key` on a cluster: of its hash tag (the text between its first `{`
/// and the next `}`, when not empty), else of the whole key.
pub(crate) fn key_slot(key: &str) -> u16 {
    let tagged = key.find('{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.find('}').filter(|close| *close > 0).map(|close| &rest[..close])
    });
    slot(tagged.unwrap_or(key).as_bytes())
}

/// Where the library's own keys live under the configured prefix.
fn root(config: &Config) -> String {
    format!("{}:__memo", config.key_prefix())
}

/// The set of draining indexes under the configured prefix.
pub(crate) fn drains(config: &Config) -> String {
    format!("{}:drains", root(config))
}

/// The epoch key of the sub-index a draining index belongs to.
pub(crate) fn epoch_of_draining(draining: &str) -> Option<String> {
    draining.rsplit_once(":i:draining:").map(|(base, _)| format!("{base}:e"))
}

/// The payload of a stored value if it carries the `epoch` tag; `Err` if the value has
/// no tag at all (foreign bytes), `Ok(None)` if it is from another epoch.
pub(crate) fn untag<'v>(value: &'v [u8], epoch: &str) -> Result<Option<&'v [u8]>, ()> {
    let rest = value.strip_prefix(b"e").ok_or(())?;
    let bar = rest.iter().position(|b| *b == b'|').ok_or(())?;
    let (number, payload) = (&rest[..bar], &rest[bar + 1..]);
    if number.is_empty() || !number.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    Ok((number == epoch.as_bytes()).then_some(payload))
}

/// The write time (Redis's clock, ms) and the rest of a payload stamped `t{ms}|`, or
/// `None` when it carries no stamp (written before `stale` or `refresh` was set).
pub(crate) fn unstamp(payload: &[u8]) -> Option<(u64, &[u8])> {
    let rest = payload.strip_prefix(b"t")?;
    let bar = rest.iter().position(|b| *b == b'|')?;
    let written = std::str::from_utf8(&rest[..bar]).ok()?.parse().ok()?;
    Some((written, &rest[bar + 1..]))
}

/// Whether the strict entry key `key` has every `name=hex` segment of `wanted`.
pub(crate) fn has_segments(key: &str, wanted: &[String]) -> bool {
    let Some((_, args)) = key.rsplit_once(":k:") else { return false };
    wanted.iter().all(|w| args.split(':').any(|s| s == w))
}

/// `prefix` with the glob characters of Redis's MATCH escaped.
pub(crate) fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::unhex;

    #[test]
    fn segments_match_exactly() {
        let key = "memo:_:json:m::f:00:k:a=2a:b=";
        assert!(has_segments(key, &["a=2a".into()]));
        assert!(has_segments(key, &["a=2a".into(), "b=".into()]));
        assert!(!has_segments(key, &["a=2".into()]));
        assert!(!has_segments(key, &["a=2a2a".into()]));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn values_are_read_in_their_epoch_only() {
        assert_eq!(untag(b"e3|abc", "3"), Ok(Some(&b"abc"[..])));
        assert_eq!(untag(b"e3|", "3"), Ok(Some(&b""[..])));
        assert_eq!(untag(b"e2|abc", "3"), Ok(None));
        assert_eq!(untag(b"e31|abc", "3"), Ok(None));
        assert_eq!(untag(b"\"user\"", "3"), Err(()));
        assert_eq!(untag(b"ex|a", "3"), Err(()));
        assert_eq!(untag(b"", "3"), Err(()));
        assert_eq!(epoch_of_draining("p:_:json:f:00:i:draining:12-3"), Some("p:_:json:f:00:e".into()));
    }

    const fn decl(version: u32) -> memo_core::plumbing::Decl {
        memo_core::plumbing::Decl {
            name: "f",
            anchor: || "app::__memo_f_function::Anchor",
            backend: &crate::JsonBackend,
            strict: false,
            is_async: false,
            arg_names: &["a"],
            arg_types: &["u32"],
            signature: "(a: u32) -> u32",
            limit: None,
            expire: None,
            expire_jitter: None,
            version,
            key_prefix: None,
            tags: &[],
            stale: 0,
            refresh: 0,
            early_refresh: false,
            lease: 0,
            local: 0,
            dependencies: &[],
        }
    }

    /// `version = N` is part of the key: entries written under another version are
    /// never read. Version 0 keeps the keys written before versions existed.
    #[test]
    fn the_version_is_part_of_the_namespace() {
        static V0: CachedFunction = CachedFunction::__new(decl(0));
        static V0_AGAIN: CachedFunction = CachedFunction::__new(decl(0));
        static V2: CachedFunction = CachedFunction::__new(decl(2));
        let config = Config::default();
        let (v0, v2) = (Namespace::of(&V0, &config), Namespace::of(&V2, &config));
        assert_ne!(v0.base(), v2.base());
        assert_eq!(v0.base(), Namespace::of(&V0_AGAIN, &config).base());
        let before_versions = format!("{:016x}", fnv1a(b"(a: u32) -> u32|strict=false"));
        assert!(v0.base().ends_with(&before_versions), "{}", v0.base());
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
