//! The `memo-alchemy` CLI against a real Redis Cluster of six servers (three
//! primaries): every primary is scanned, and `flush --all` clears every sub-index.

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;

use common::{function, json, kept_after_flush};
use support::{is_child, server, use_cluster};

fn cluster_env(prefix: &str) -> Vec<(&'static str, String)> {
    use_cluster();
    let urls = server().cluster().expect("a cluster").urls().join(",");
    vec![("MEMO_REDIS_CLUSTER_URLS", urls), ("MEMO_KEY_PREFIX", prefix.to_owned())]
}

#[test]
fn child_fill() {
    if is_child() {
        use_cluster();
        server();
        common::fill();
    }
}

#[test]
fn functions_and_flush_all_cover_every_primary() {
    let env = cluster_env("cli-cluster");
    common::run_child("child_fill", "cli-cluster");
    let functions = json(&env, &["functions"]);
    assert_eq!(functions.as_array().unwrap().len(), 3, "{functions:#}");
    assert_eq!(function(&functions, "profile").unwrap()["entries"], 3);
    let profiles = json(&env, &["keys", "profile"]);
    assert_eq!(profiles.as_array().unwrap().len(), 3, "{profiles:#}");
    // The entries are spread over sub-indexes (so over primaries).
    let cluster = server().cluster().unwrap();
    assert!(!cluster.keys("cli-cluster:*:k:*").is_empty());

    // Every sub-index of the function (16 without a `limit`), not only the two with
    // keys: each one's generation moves on, so no fill in flight stores after the flush.
    // (The store does not say the count: those of every count that fits are cleared.)
    let path = function(&functions, "roster").unwrap()["path"].as_str().unwrap().to_owned();
    let flushed = json(&env, &["flush", "--function", &path, "--yes"]);
    assert_eq!(flushed["entries"], 2, "{flushed:#}");
    let generations = cluster.keys("cli-cluster:*::roster:*:g");
    assert!(generations.len() >= 16, "{generations:?}");

    let all = json(&env, &["flush", "--all", "--yes"]);
    assert_eq!(all["entries"], 5, "{all:#}");
    assert!(json(&env, &["functions"]).as_array().unwrap().is_empty());
    let left = cluster.keys("cli-cluster:*");
    assert!(left.iter().all(|k| kept_after_flush(k)), "{left:?}");
}
