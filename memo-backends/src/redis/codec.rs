//! How values are stored: JSON, or self-describing MessagePack in a checked envelope.

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

/// Values as MessagePack with field and variant names (rmp-serde), a compact binary
/// serde encoding that round-trips what JSON cannot (non-string map keys, `u128`,
/// enums with data), in an envelope, `MP2` + FNV-1a of the payload + payload, that
/// turns truncated or foreign bytes into a decode error.
///
/// The encoding describes itself: fields and variants are matched by name and every
/// value carries its kind, so a value written under one definition of its type either
/// decodes to the same value under another (fields reordered, `u32` widened to `u64`)
/// or fails to decode and is a miss (a field's type changed, a variant renamed). The
/// `MP1` values of earlier versions (postcard, matched by position) are misses.
#[derive(Debug)]
pub enum PickleCodec {}

const MAGIC: &[u8; 3] = b"MP2";

impl Codec for PickleCodec {
    const NAME: &'static str = "pickle";

    fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, String> {
        let payload = rmp_serde::to_vec_named(value).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(payload.len() + 11);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, String> {
        let rest = bytes.strip_prefix(MAGIC).ok_or("not a pickle value (no MP2 header)")?;
        let (sum, payload) = rest.split_at_checked(8).ok_or("truncated pickle header")?;
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| "truncated pickle header")?);
        if sum != fnv1a(payload) {
            return Err("pickle checksum mismatch: truncated or foreign bytes".into());
        }
        let mut reader = payload;
        let value =
            V::deserialize(&mut rmp_serde::Deserializer::new(&mut reader)).map_err(|e| e.to_string())?;
        if !reader.is_empty() {
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
        assert!(PickleCodec::decode::<String>(b"MP2").is_err());
    }

    /// Writes `old` and reads it back as `New`, as a later build of a program would.
    fn reread<Old: Serialize, New: DeserializeOwned>(old: &Old) -> Result<New, String> {
        PickleCodec::decode(&PickleCodec::encode(old)?)
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct StatsV1 {
        hits: u64,
        misses: u64,
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct StatsV2 {
        misses: u64,
        hits: u64,
    }

    /// Regression: postcard matched fields by position, so swapping two fields' order
    /// read `hits: 3, misses: 10` back as `misses: 3, hits: 10`.
    #[test]
    fn pickle_reordered_fields_keep_their_values() {
        let back: StatsV2 = reread(&StatsV1 { hits: 3, misses: 10 }).unwrap();
        assert_eq!(back, StatsV2 { misses: 10, hits: 3 });
    }

    /// Regression: `Money { cents: u64 }` changed to `i64` read 500 back as 250.
    #[test]
    fn pickle_changed_field_type_is_the_same_value_or_an_error() {
        #[derive(Serialize)]
        struct MoneyU64 {
            cents: u64,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct MoneyI64 {
            cents: i64,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct MoneyF32 {
            cents: f32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct MoneyText {
            cents: String,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct MoneyBytes {
            cents: Vec<u8>,
        }
        assert_eq!(reread::<_, MoneyI64>(&MoneyU64 { cents: 500 }).unwrap(), MoneyI64 { cents: 500 });
        assert!(reread::<_, MoneyI64>(&MoneyU64 { cents: u64::MAX }).is_err(), "out of range: an error");
        // An integer read as a float is converted, as JSON would (exact below 2^24).
        assert!(reread::<_, MoneyF32>(&MoneyU64 { cents: 500 }).map_or(true, |m| m.cents == 500.0));
        assert!(reread::<_, MoneyText>(&MoneyU64 { cents: 500 }).is_err());
        assert!(reread::<_, MoneyBytes>(&("text",)).is_err());
    }

    #[test]
    fn pickle_reordered_or_renamed_variants_are_the_same_value_or_an_error() {
        #[derive(Serialize)]
        enum ShapeV1 {
            Circle(u32),
            Square { side: u32 },
            Empty,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        enum ShapeV2 {
            Empty,
            Square { side: u32 },
            Circle(u32),
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        enum ShapeRenamed {
            Round(u32),
            Square { side: u32 },
            Nothing,
        }
        assert_eq!(reread::<_, ShapeV2>(&ShapeV1::Circle(4)).unwrap(), ShapeV2::Circle(4));
        assert_eq!(reread::<_, ShapeV2>(&ShapeV1::Square { side: 2 }).unwrap(), ShapeV2::Square { side: 2 });
        assert_eq!(reread::<_, ShapeV2>(&ShapeV1::Empty).unwrap(), ShapeV2::Empty);
        assert!(reread::<_, ShapeRenamed>(&ShapeV1::Circle(4)).is_err());
        assert!(reread::<_, ShapeRenamed>(&ShapeV1::Empty).is_err());
    }

    #[test]
    fn pickle_added_field_or_changed_shape_is_an_error() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct StatsV3 {
            hits: u64,
            misses: u64,
            errors: u64,
        }
        assert!(reread::<_, StatsV3>(&StatsV1 { hits: 1, misses: 2 }).is_err());
        assert!(
            reread::<_, u64>(&Some(5_u64)).map_or(true, |v| v == 5),
            "Option to T: the same value or an error"
        );
        assert!(
            reread::<_, (u64, u64)>(&StatsV1 { hits: 1, misses: 2 }).is_err(),
            "named fields are not a tuple"
        );
        assert_eq!(reread::<_, i128>(&i128::MIN).unwrap(), i128::MIN);
        assert_eq!(reread::<_, u128>(&u128::MAX).unwrap(), u128::MAX);
    }
}
