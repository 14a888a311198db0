//! What the shared stores (Redis, PostgreSQL) key entries by: a function's identity
//! fingerprint and its arguments' segments, encoded so that two argument lists never
//! share a key.

use memo_core::{CachedFunction, Config, StrictKeys};
use serde::Serialize;

/// The fingerprint of what a function's stored values depend on: its signature as
/// written, strictness, `version`, tags and whether values carry their write time. A
/// change to any of them starts a new namespace, whose old entries are never read.
pub(crate) fn fingerprint(function: &'static CachedFunction, config: &Config) -> u64 {
    let mut identity = format!("{}|strict={}", function.signature(), function.is_strict());
    if function.version() != 0 {
        // Version 0 keeps the keys written before versions existed.
        identity.push_str(&format!("|version={}", function.version()));
    }
    if !function.tags().is_empty() {
        // Entries written before the tags were declared are in no tag's set (nor those
        // of the global tag sets the Redis backends had before their sub-indexes).
        identity.push_str(&format!("|tag-sets={}", function.tags().join(",")));
    }
    if function.policy(config).tracks_freshness() || function.local_tier().is_some() {
        // Values carry their write time (for `stale`, `refresh`, a `local` tier): a
        // namespace of their own.
        identity.push_str("|stamped");
    }
    fnv1a(identity.as_bytes())
}

/// The arguments part of an entry's key: strict keys name each argument
/// (`name=hex:name=hex`), others are the hex of the encoded tuple.
pub(crate) fn arguments<K: Serialize>(
    function: &CachedFunction,
    strict: Option<&StrictKeys<K>>,
    key: &K,
) -> Result<String, postcard::Error> {
    Ok(match strict {
        Some(strict) => {
            let mut parts = Vec::with_capacity(function.arg_names().len());
            for (index, name) in function.arg_names().iter().enumerate() {
                let bytes = strict.encode(key, index).unwrap_or(Ok(Vec::new()))?;
                parts.push(segment(name, &bytes));
            }
            parts.join(":")
        }
        None => hex(&postcard::to_stdvec(key)?),
    })
}

/// The strict segment of one argument: `name=hex`.
pub(crate) fn segment(name: &str, encoded: &[u8]) -> String {
    format!("{name}={}", hex(encoded))
}

/// The segments a partial clear selects: `(argument index, encoding)` pairs of
/// `function` as `name=hex`.
pub(crate) fn selected(function: &CachedFunction, resolved: &[(usize, &[u8])]) -> Vec<String> {
    resolved.iter().map(|(i, bytes)| segment(function.arg_names()[*i], bytes)).collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// FNV-1a, 64 bits: stable across processes and builds, unlike std's hashers.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Nanoseconds since the Unix epoch by the wall clock (0 before it).
pub(crate) fn wall_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// The time by the wall clock in ms (the store's clock and this one are assumed close:
/// a `stale` or `refresh` judgement is off by their difference).
pub(crate) fn wall_ms() -> u64 {
    u64::try_from(wall_nanos() / 1_000_000).unwrap_or(u64::MAX)
}

/// The bytes of lower-case `hex`, or `None` if it is not hex.
pub(crate) fn unhex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}
