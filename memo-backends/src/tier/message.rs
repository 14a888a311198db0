//! The messages of the invalidation buses (Redis pub/sub, PostgreSQL `LISTEN`/`NOTIFY`),
//! the same on both: what a message says, how it is framed and numbered, and its
//! delivery to the listeners of this process.
//!
//! A message names its origin (a process ignores its own), a function's namespace and
//! what to remove: everything (`F`; with no namespace, every tier), the entries with
//! every one of some `name=hex` segments (`P`), those of any namespace carrying one of
//! some tags (`T`), one entry (`K`). Each field is written as `<length in bytes>:<field>`
//! with `\` and NUL escaped (`\\`, `\0`), so that a field may hold any character and a
//! payload is text. A bus sends it numbered (`{n}#{message}`); a subscriber expects
//! each number once, in order.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use super::Listener;
use crate::retries::What;

/// The message that tells the other processes to drop what `what` covers of `ns`
/// (tags: of any namespace), from `origin`.
pub(crate) fn message(origin: &str, ns: &str, what: &What) -> String {
    let one;
    let (kind, ns, fields): (char, &str, &[String]) = match what {
        What::All => ('F', ns, &[]),
        What::Matching(segments) => ('P', ns, segments),
        What::Tags(tags) => ('T', "", tags),
        What::Key(key) => {
            // A Redis entry key ends in its arguments' segments, which is what a tier
            // compares (and a PostgreSQL row key is only those).
            one = [key.rsplit_once(":k:").map_or(key.as_str(), |(_, args)| args).to_owned()];
            ('K', ns, &one)
        }
    };
    let mut all = vec![origin, ns];
    all.extend(fields.iter().map(String::as_str));
    frame(kind, &all)
}

/// A message: its kind, then each field, escaped, as `<length in bytes>:<field>`.
pub(crate) fn frame(kind: char, fields: &[&str]) -> String {
    let mut message = String::from(kind);
    for field in fields {
        let field = escape(field);
        message.push_str(&field.len().to_string());
        message.push(':');
        message.push_str(&field);
    }
    message
}

/// The kind and fields of a [`frame`]d message; `None` for anything else (a message of
/// another version is ignored).
pub(crate) fn unframe(message: &str) -> Option<(char, Vec<String>)> {
    let mut chars = message.chars();
    let kind = chars.next()?;
    let mut rest = chars.as_str();
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (length, tail) = rest.split_once(':')?;
        let length: usize = length.parse().ok()?;
        fields.push(unescape(tail.get(..length)?)?);
        rest = tail.get(length..)?;
    }
    Some((kind, fields))
}

/// `field` with `\` and NUL escaped.
fn escape(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains(['\\', '\0']) {
        field.replace('\\', "\\\\").replace('\0', "\\0").into()
    } else {
        field.into()
    }
}

/// What [`escape`] escaped; `None` for a stray `\`.
fn unescape(field: &str) -> Option<String> {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next()? {
                '\\' => '\\',
                '0' => '\0',
                _ => return None,
            },
            c => c,
        });
    }
    Some(out)
}

/// The numbers one subscription has seen.
#[derive(Debug)]
pub(crate) struct Numbers {
    last: u64,
}

impl Numbers {
    /// A subscription that expects the number after `last` next (read before it
    /// subscribed: a message published in between shows as a gap, a drop of values
    /// while there are few).
    pub(crate) fn after(last: u64) -> Numbers {
        Numbers { last }
    }

    /// The message of a numbered payload, and whether its number is the next one (a
    /// gap otherwise: a message lost, or the counter reset); `None` for a payload that
    /// is not numbered.
    pub(crate) fn read<'p>(&mut self, payload: &'p str) -> Option<(&'p str, bool)> {
        let (number, message) = payload.split_once('#')?;
        let number: u64 = number.parse().ok()?;
        let next = number == self.last.wrapping_add(1);
        if !next {
            tracing::warn!(
                expected = self.last.wrapping_add(1),
                got = number,
                "memo-alchemy: an invalidation message went missing; local values dropped"
            );
        }
        self.last = number;
        Some((message, next))
    }
}

/// The listeners of this process, by namespace.
#[derive(Default)]
pub(crate) struct Listeners {
    by_namespace: RwLock<HashMap<String, Vec<Arc<dyn Listener>>>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners").field("namespaces", &self.by_namespace.read().len()).finish()
    }
}

impl Listeners {
    /// Delivers the messages about `ns` to `listener`.
    pub(crate) fn add(&self, ns: &str, listener: Arc<dyn Listener>) {
        self.by_namespace.write().entry(ns.to_owned()).or_default().push(listener);
    }

    /// Hands a framed message to the listeners it concerns, unless it came from `own`
    /// (this process, which applied it already).
    pub(crate) fn deliver(&self, own: &str, message: &str) {
        let Some((kind, fields)) = unframe(message) else { return };
        let [origin, ns, rest @ ..] = &fields[..] else { return };
        if origin == own {
            return;
        }
        let listeners = self.by_namespace.read();
        match kind {
            'T' => {
                listeners.values().flatten().for_each(|listener| listener.invalidate_tagged(rest));
                drop(listeners);
                // The entries private to this process (memory) that carry the tags.
                memo_core::invalidate_private_tags(rest);
            }
            // A message too big for a payload, about tags: every tier goes.
            'F' if ns.is_empty() => listeners.values().flatten().for_each(|l| l.invalidate_all()),
            _ => {
                for listener in listeners.get(ns.as_str()).into_iter().flatten() {
                    match kind {
                        'F' => listener.invalidate_all(),
                        'P' => {
                            let segments: Vec<&str> = rest.iter().map(String::as_str).collect();
                            listener.invalidate_matching(&segments);
                        }
                        'K' => rest.iter().for_each(|key| listener.invalidate_key(key)),
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{frame, unframe, Numbers};

    #[test]
    fn fields_with_separators_and_nul_survive_framing() {
        let fields = ["12-ab", "a|b:c 3:x", "", "id=0a", "é|", "nul\0here", "back\\slash\\0"];
        let message = frame('T', &fields);
        assert!(!message.contains('\0'), "a payload holds no NUL");
        let expected: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        assert_eq!(unframe(&message), Some(('T', expected)));
    }

    #[test]
    fn truncated_or_foreign_messages_are_ignored() {
        let message = frame('F', &["origin", "ns"]);
        assert_eq!(unframe(&message[..message.len() - 1]), None);
        assert_eq!(unframe("F|origin|ns"), None);
        assert_eq!(unframe("F3:a\\x"), None);
        assert_eq!(unframe(""), None);
    }

    #[test]
    fn a_number_out_of_order_is_a_gap() {
        let mut numbers = Numbers::after(4);
        assert_eq!(numbers.read("5#F"), Some(("F", true)));
        assert_eq!(numbers.read("7#P"), Some(("P", false)), "6 went missing");
        assert_eq!(numbers.read("8#K"), Some(("K", true)));
        assert_eq!(numbers.read("1#T"), Some(("T", false)), "the counter was reset");
        assert_eq!(numbers.read("F"), None);
    }
}
