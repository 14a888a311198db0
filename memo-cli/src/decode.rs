//! Best-effort decoding of what the store holds, without the program's types: entry
//! arguments (hex of postcard bytes) and values (JSON, MessagePack).

/// The arguments of an entry key, readable: strict keys (`name=hex:name=hex`) as
/// `name=value, name=value`, others (hex of the encoded tuple) as `value, value`.
pub(crate) fn arguments(encoded: &str) -> String {
    if encoded.contains('=') {
        encoded
            .split(':')
            .map(|segment| match segment.split_once('=') {
                Some((name, hex)) => format!("{name}={}", hex_postcard(hex)),
                None => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        hex_postcard(encoded)
    }
}

/// The postcard bytes of `hex`, readable; the hex itself when it is not hex.
fn hex_postcard(hex: &str) -> String {
    match unhex(hex) {
        Some(bytes) => postcard(&bytes),
        None => hex.to_owned(),
    }
}

/// The bytes of lower- or upper-case `hex`.
pub(crate) fn unhex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// Postcard bytes guessed into values: a length-prefixed run of printable UTF-8 is a
/// string, anything else a varint (unsigned integers, lengths, enum variants, bools).
/// Postcard carries no types: this is a reading aid, not a decoder.
pub(crate) fn postcard(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some((n, used)) = varint(&bytes[i..]) {
            let start = i + used;
            let end = usize::try_from(n).ok().and_then(|n| start.checked_add(n));
            if let Some(text) = end
                .filter(|&end| n > 0 && end <= bytes.len())
                .and_then(|end| std::str::from_utf8(&bytes[start..end]).ok())
                .filter(|t| t.chars().all(|c| !c.is_control()))
            {
                out.push(format!("{text:?}"));
                i = start + text.len();
                continue;
            }
            out.push(n.to_string());
            i = start;
        } else {
            out.push(format!("0x{}", hex(&bytes[i..])));
            break;
        }
    }
    out.join(", ")
}

/// A LEB128 varint at the start of `bytes`, and its length.
fn varint(bytes: &[u8]) -> Option<(u128, usize)> {
    let mut value: u128 = 0;
    for (i, b) in bytes.iter().enumerate().take(19) {
        value |= u128::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored value as JSON, decoded by the library's own codec: `json` values are JSON
/// already, `pickle` values self-describing MessagePack in the `MP2` envelope. `Err`
/// with a reason when it does not decode (a MessagePack map with non-string keys, say).
pub(crate) fn value(backend: &str, payload: &[u8]) -> Result<serde_json::Value, String> {
    use memo_backends::redis::{Codec, JsonCodec, PickleCodec};
    match backend {
        "pickle" => PickleCodec::decode(payload),
        _ => JsonCodec::decode(payload),
    }
}

/// Whether `text` matches `search`: as a substring, or fuzzily (its characters in
/// order), ignoring case. Returns a rank, lower is better: 0 substring, 1 fuzzy.
pub(crate) fn matches(text: &str, search: &str) -> Option<u8> {
    let (text, search) = (text.to_lowercase(), search.to_lowercase());
    if text.contains(&search) {
        return Some(0);
    }
    let mut chars = text.chars();
    search.chars().all(|wanted| chars.any(|c| c == wanted)).then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_integers_are_told_apart() {
        // ("alice", 42u32): length 5, "alice", varint 42.
        assert_eq!(postcard(&[5, b'a', b'l', b'i', b'c', b'e', 42]), "\"alice\", 42");
        assert_eq!(postcard(&[0xac, 0x02]), "300");
        assert_eq!(postcard(&[0xff]), "0xff");
    }

    #[test]
    fn strict_keys_keep_their_names() {
        assert_eq!(arguments("id=07:name=03626f62"), "id=7, name=\"bob\"");
        assert_eq!(arguments("0507"), "5, 7");
    }

    #[test]
    fn search_is_substring_then_fuzzy() {
        assert_eq!(matches("\"alice\", 42", "ALI"), Some(0));
        assert_eq!(matches("\"alice\", 42", "ace"), Some(1));
        assert_eq!(matches("\"alice\", 42", "bob"), None);
    }

    #[test]
    fn values_decode_by_backend() {
        assert_eq!(value("json", b"[1,2]"), Ok(serde_json::json!([1, 2])));
        use memo_backends::redis::{Codec, PickleCodec};
        let packed = PickleCodec::encode(&vec![1u8, 2]).unwrap();
        assert_eq!(value("pickle", &packed), Ok(serde_json::json!([1, 2])));
        assert!(value("json", b"{").is_err());
    }
}
