//! The pickle encoding, before and after it became self-describing: postcard (fields
//! by position, the `MP1` encoding) against MessagePack with field and variant names
//! (`PickleCodec`, `MP2`), encode and decode side by side. Sizes are printed once.
//!
//! Run with `cargo bench --bench codec`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use memo_backends::redis::{Codec, PickleCodec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    score: f64,
    tags: Vec<u8>,
}

fn compare<V: Serialize + DeserializeOwned>(c: &mut Criterion, label: &str, value: &V) {
    let old = postcard::to_stdvec(value).expect("postcard encodes the bench value");
    let new = PickleCodec::encode(value).expect("pickle encodes the bench value");
    // The old envelope added 11 bytes (magic and checksum) to the postcard payload.
    println!("{label}: {} bytes before, {} bytes now", old.len() + 11, new.len());
    let mut group = c.benchmark_group(format!("pickle codec/{label}"));
    group.bench_function("encode: postcard (MP1)", |b| b.iter(|| postcard::to_stdvec(black_box(value))));
    group.bench_function("encode: named MessagePack (MP2)", |b| {
        b.iter(|| PickleCodec::encode(black_box(value)))
    });
    group.bench_function("decode: postcard (MP1)", |b| b.iter(|| postcard::from_bytes::<V>(black_box(&old))));
    group.bench_function("decode: named MessagePack (MP2)", |b| {
        b.iter(|| PickleCodec::decode::<V>(black_box(&new)))
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    let row = Row { id: 42, name: "alice".into(), score: 0.5, tags: vec![1, 2, 3] };
    compare(c, "small struct", &row);
    compare(c, "100 structs", &vec![row; 100]);
    let map: BTreeMap<(u32, u32), u128> = (0..100).map(|i| ((i, i + 1), u128::from(i) << 70)).collect();
    compare(c, "map with tuple keys and u128", &map);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
