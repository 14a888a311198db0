//! Key layout in Redis.
//!
//! ```text
//! {config prefix}:{function prefix or _}:{backend}:{function path}:{fingerprint}   the namespace
//!   …:k:{hex of the postcard-encoded argument tuple}                               an entry (non-strict)
//!   …:k:{name}={hex}:{name}={hex}                                                  an entry (strict)
//!   …:i                                                                            the index (ZSET)
//!   …:g                                                                            the clear generation
//!   …:e                                                                            the entry epoch
//!   …:i:draining:{unique}                                                          a cleared index, draining
//! {config prefix}:__memo:drains                                                    the draining indexes (SET)
//! {config prefix}:__memo:tag:{tag}                                                 the entries carrying a tag (SET)
//! {config prefix}:__memo:tagv:{tag}                                                a tag's version
//! {config prefix}:__memo:tagdrain:{tag}                                            a tag's entries being removed (SET)
//! ```
//!
//! Tags: the write script adds the entry to each of its tags' sets, if no tag's version
//! moved since the lookup read it (the lookup's `MGET` reads them beside the value). An
//! invalidation moves each tag's version on (no fill that began before can store), then
//! sets its set aside (renamed to its draining set) and removes those entries in batches. A tag set lives as long as its longest
//! lived entry, and each write drops up to two members whose entry is gone.
//!
//! An entry's value is `e{epoch}|` then the encoded value: only values of the current
//! epoch are read. A full clear moves the epoch on (every entry is unreadable at once),
//! renames the index aside and lists it in the drains set, where a background drain in
//! any process removes its old entries in batches. The generation moves on with every
//! clear, full or partial: a fill that began before cannot store.
//!
//! Arguments are hex-encoded postcard bytes, so they never contain `:`, `=` or a glob
//! character, and two argument lists never share a key. The fingerprint hashes the
//! signature as written, so a changed argument or return type starts a new namespace.

use memo_core::{CachedFunction, Config};

pub(crate) use crate::keys::{fnv1a, hex, selected};

/// One function's keys.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    base: String,
    /// The longest time the function's entries are kept in ms (`expire` plus its
    /// jitter, plus `stale`), 0 for none: live entries are among the index members written less than this long
    /// ago.
    ttl_ms: u64,
    drains: String,
    /// `{config prefix}:__memo`, under which the tags live.
    root: String,
    /// The function's tag templates: a pending tag invalidation that one of them can
    /// match blocks the function's reads.
    templates: &'static [&'static str],
}

impl Namespace {
    pub(crate) fn of(function: &CachedFunction, config: &Config) -> Namespace {
        let fingerprint = crate::keys::fingerprint(function, config);
        Namespace {
            base: format!(
                "{}:{}:{}:{}:{fingerprint:016x}",
                config.key_prefix(),
                function.key_prefix().unwrap_or("_"),
                function.backend(),
                function.path(),
            ),
            ttl_ms: function.policy(config).max_retention_ms().unwrap_or(0),
            drains: drains(config),
            root: root(config),
            templates: function.tags(),
        }
    }

    /// The pseudo-namespace of tag invalidations, which the retry queue keeps.
    pub(crate) fn tags(config: &Config) -> Namespace {
        Namespace {
            base: format!("{}:tags", root(config)),
            ttl_ms: 0,
            drains: drains(config),
            root: root(config),
            templates: &[],
        }
    }

    /// Whether one of the function's tag templates can render one of `tags`.
    pub(crate) fn may_carry(&self, tags: &[String]) -> bool {
        memo_core::may_carry(self.templates, tags)
    }

    /// The set of the entries carrying `tag`.
    pub(crate) fn tag_set(&self, tag: &str) -> String {
        format!("{}:tag:{tag}", self.root)
    }

    /// The entries of `tag` that an invalidation set aside and is removing.
    pub(crate) fn tag_draining(&self, tag: &str) -> String {
        format!("{}:tagdrain:{tag}", self.root)
    }

    /// The version of `tag`, moved on by each invalidation.
    pub(crate) fn tag_version(&self, tag: &str) -> String {
        format!("{}:tagv:{tag}", self.root)
    }

    pub(crate) fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    pub(crate) fn epoch(&self) -> String {
        format!("{}:e", self.base)
    }

    pub(crate) fn drains(&self) -> &str {
        &self.drains
    }

    /// A unique name to rename the index to when it is cleared.
    pub(crate) fn draining(&self, unique: &str) -> String {
        format!("{}:i:draining:{unique}", self.base)
    }

    /// The key of the entry whose arguments encode to `segments` (see the module docs).
    pub(crate) fn entry(&self, segments: &str) -> String {
        format!("{}:k:{segments}", self.base)
    }

    /// The namespace itself, which invalidation messages name.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn index(&self) -> String {
        format!("{}:i", self.base)
    }

    pub(crate) fn generation(&self) -> String {
        format!("{}:g", self.base)
    }
}

/// Where the library's own keys live under the configured prefix.
fn root(config: &Config) -> String {
    format!("{}:__memo", config.key_prefix())
}

/// The set of draining indexes under the configured prefix.
pub(crate) fn drains(config: &Config) -> String {
    format!("{}:drains", root(config))
}

/// The epoch key of the namespace a draining index belongs to.
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

/// The bytes of lower-case `hex`, or `None` if it is not hex.
pub(crate) fn unhex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
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
