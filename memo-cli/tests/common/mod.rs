//! What the CLI tests share: cached functions that a child process (this test binary
//! run again, see `support::child_command`) fills the store with, and the CLI command
//! pointed at the test server with a key prefix of the test's own.

#![allow(dead_code)]

use std::process::Stdio;

use memo_alchemy::cache;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::support::child_command;

/// A JSON value with a struct, a string and a bool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: u64,
    pub name: String,
    pub admin: bool,
}

pub static PROFILE_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cache(backend = "json", tags = ["user:{id}"])]
pub fn profile(id: u64, name: String) -> Profile {
    PROFILE_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Profile { id, admin: id == 1, name }
}

/// No `limit`: on a cluster, its entries spread over 16 sub-indexes.
#[cache(backend = "pickle", tags = ["team:{team}"], limit = -1)]
pub fn roster(team: u64) -> Vec<String> {
    vec![format!("player-{team}-a"), format!("player-{team}-b")]
}

#[cache(backend = "json", strict = true)]
pub fn population(city: String, year: u32) -> u64 {
    city.len() as u64 * u64::from(year)
}

/// Fills the store as a program would: 3 profiles, 2 rosters, 2 populations.
pub fn fill() {
    for (id, name) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        profile(id, name.to_owned());
    }
    roster(7);
    roster(8);
    population("Paris".to_owned(), 2024);
    population("Lyon".to_owned(), 2024);
}

/// Runs the child test `test` with the key prefix `prefix` and waits for it.
pub fn run_child(test: &str, prefix: &str) {
    let out = child_command(test, &[("MEMO_TEST_KEY_PREFIX", prefix.to_owned())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the child runs");
    assert!(out.status.success(), "child {test} failed: {}", String::from_utf8_lossy(&out.stdout));
}

/// The CLI, reading only the `MEMO_*` variables given here.
pub fn cli(env: &[(&str, String)]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("memo-alchemy");
    for (name, _) in std::env::vars() {
        if name.starts_with("MEMO_") {
            cmd.env_remove(name);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the CLI with `args` and `--json`, expecting success; its output parsed.
pub fn json(env: &[(&str, String)], args: &[&str]) -> Value {
    let out = cli(env).args(args).arg("--json").output().expect("the CLI runs");
    assert!(
        out.status.success(),
        "memo-alchemy {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

/// The function whose path ends with `::name` in a `functions --json` listing.
pub fn function<'v>(functions: &'v Value, name: &str) -> Option<&'v Value> {
    let suffix = format!("::{name}");
    functions.as_array()?.iter().find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(&suffix)))
}

/// A key that `flush --all` leaves on purpose: generations and epochs (expiring), the
/// tagged hash that running programs listed their functions in, and the bus's message
/// counter (whose reset running subscribers would take for a lost message).
pub fn kept_after_flush(key: &str) -> bool {
    key.ends_with(":g")
        || key.ends_with(":e")
        || key.ends_with(":__memo:tagged")
        || key.ends_with(":__memo:sequence")
}
