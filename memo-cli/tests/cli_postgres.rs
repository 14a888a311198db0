//! The `memo-alchemy` CLI against a real PostgreSQL, filled by a child program.

#[path = "../../tests/support/postgres.rs"]
mod support;

use std::process::Stdio;

use memo_alchemy::cache;
use serde_json::Value;
use support::{child_command, is_child, server};

#[cache(backend = "postgres", tags = ["user:{id}"])]
fn profile(id: u64, name: String) -> String {
    format!("{name}#{id}")
}

#[test]
fn child_fill() {
    if is_child() {
        server();
        for (id, name) in [(1, "alice"), (2, "bob"), (3, "carol")] {
            profile(id, name.to_owned());
        }
    }
}

fn json(args: &[&str]) -> Value {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("memo-alchemy");
    for (name, _) in std::env::vars() {
        if name.starts_with("MEMO_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .env("MEMO_POSTGRES_URL", server().url())
        .env("MEMO_POSTGRES_SCHEMA", "memo_test")
        .env("MEMO_KEY_PREFIX", "cli-pg")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn functions_keys_inspect_and_flush_by_tag() {
    server();
    let out = child_command("child_fill", &[("MEMO_TEST_KEY_PREFIX", "cli-pg".to_owned())])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Auto: PostgreSQL, since no Redis variable is set.
    let functions = json(&["functions"]);
    let listed = functions.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{functions:#}");
    assert_eq!((listed[0]["backend"].as_str(), listed[0]["entries"].as_u64()), (Some("postgres"), Some(3)));
    assert!(listed[0]["path"].as_str().unwrap().ends_with("::profile"));

    let bob = json(&["keys", "profile", "--search", "bob"]);
    assert_eq!(bob[0]["decoded"], "2, \"bob\"", "{bob:#}");
    let entry = json(&["inspect", bob[0]["key"].as_str().unwrap()]);
    assert_eq!(entry["value"], "bob#2", "{entry:#}");
    assert_eq!(entry["tags"], serde_json::json!(["user:2"]));

    let flushed = json(&["flush", "--tag", "user:2", "--yes"]);
    assert_eq!(flushed["entries"], 1, "{flushed:#}");
    assert_eq!(json(&["functions"])[0]["entries"], 2);
    let stats = json(&["stats"]);
    assert_eq!(stats["entries"], 2, "{stats:#}");

    let all = json(&["flush", "--all", "--yes"]);
    assert_eq!(all["entries"], 2, "{all:#}");
    assert!(json(&["functions"]).as_array().unwrap().is_empty());
}
