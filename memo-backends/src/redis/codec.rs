//! How values are stored: JSON, or postcard in a checked envelope.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::namespace::fnv1a;

/// A value encoding for the Redis backends.
pub trait Codec: Send + Sync + 'static {
    /// The backend's name: `json` or `pickle`.
    const NAME: &'static str;
    /// Encodes a value.
    ///
    /// # Errors
    /// What the serializer reports.
    fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, String>;
    /// Decodes a value; any doubt (a changed type, truncation, foreign bytes) is an error.
    ///
    /// # Errors
    /// What is wrong with the bytes.
    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String>;
}

/// Values as JSON text (serde_json): readable in `redis-cli`.
#[derive(Debug)]
pub enum JsonCodec {}

impl Codec for JsonCodec {
    const NAME: &'static str = "json";

    fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }

    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// Values as postcard, a compact binary serde encoding that round-trips what JSON
/// cannot (non-string map keys, `u128`, enums with data). Postcard is not
/// self-describing, so the bytes travel in an envelope, `MP1` + FNV-1a of the payload
/// + payload, that turns truncated or foreign bytes into a decode error.
#[derive(Debug)]
pub enum PickleCodec {}

const MAGIC: &[u8; 3] = b"MP1";

impl Codec for PickleCodec {
    const NAME: &'static str = "pickle";

    fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, String> {
        let payload = postcard::to_stdvec(value).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(payload.len() + 11);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String> {
        let rest = bytes.strip_prefix(MAGIC).ok_or("not a pickle value (no MP1 header)")?;
        let (sum, payload) = rest.split_at_checked(8).ok_or("truncated pickle header")?;
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| "truncated pickle header")?);
        if sum != fnv1a(payload) {
            return Err("pickle checksum mismatch: truncated or foreign bytes".into());
        }
        let (value, extra) = postcard::take_from_bytes(payload).map_err(|e| e.to_string())?;
        if !extra.is_empty() {
            return Err("trailing bytes after the pickle value".into());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn pickle_round_trips_what_json_cannot() {
        let value: BTreeMap<(u8, u8), u128> = [((1, 2), u128::MAX)].into();
        let bytes = PickleCodec::encode(&value).unwrap();
        assert_eq!(PickleCodec::decode::<BTreeMap<(u8, u8), u128>>(&bytes).unwrap(), value);
        assert!(JsonCodec::encode(&value).is_err());
    }

    #[test]
    fn pickle_rejects_truncation_and_foreign_bytes() {
        let bytes = PickleCodec::encode(&"hello".to_owned()).unwrap();
        assert!(PickleCodec::decode::<String>(&bytes[..bytes.len() - 1]).is_err());
        assert!(PickleCodec::decode::<String>(b"hello").is_err());
        assert!(PickleCodec::decode::<String>(b"MP1").is_err());
    }
}
