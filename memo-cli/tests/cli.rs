//! The `memo-alchemy` CLI against a real redis-server, filled by a real program (this
//! test binary run again as a child, with `#[cache]` functions): listing, searching,
//! inspecting, counting, and flushes by tag, function and prefix, one of them seen by
//! a program that keeps running.

#[path = "../../tests/support/mod.rs"]
mod support;

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{cli, fill, function, json, kept_after_flush, profile, PROFILE_RUNS};
use support::{child_command, is_child, server};

/// The CLI's environment for the test server and `prefix`.
fn env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![("MEMO_REDIS_URL", server().url()), ("MEMO_KEY_PREFIX", prefix.to_owned())]
}

/// Fills the store under `prefix` from a child process.
fn filled(prefix: &str) -> Vec<(&'static str, String)> {
    server();
    common::run_child("child_fill", prefix);
    env(prefix)
}

#[test]
fn child_fill() {
    if is_child() {
        server();
        fill();
    }
}

#[test]
fn functions_keys_inspect_and_stats_read_the_store() {
    let env = filled("cli-read");
    let functions = json(&env, &["functions"]);
    assert_eq!(functions.as_array().unwrap().len(), 3, "{functions:#}");
    let profiles = function(&functions, "profile").expect("profile is listed");
    assert_eq!(profiles["backend"], "json");
    assert_eq!(profiles["entries"], 3);
    assert!(profiles["bytes"].as_u64().unwrap() > 30, "{profiles}");
    assert_eq!(profiles["tags"], serde_json::json!(["user:{id}"]));
    let rosters = function(&functions, "roster").expect("roster is listed");
    assert_eq!((rosters["backend"].as_str(), rosters["entries"].as_u64()), (Some("pickle"), Some(2)));
    assert_eq!(function(&functions, "population").unwrap()["entries"], 2);

    // Text output: one line per function.
    let text = cli(&env).arg("functions").output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.lines().any(|l| l.contains("::profile") && l.contains("json")), "{text}");

    // Keys: arguments decoded; a search over them.
    let keys = json(&env, &["keys", "profile"]);
    let decoded: Vec<&str> =
        keys.as_array().unwrap().iter().map(|k| k["decoded"].as_str().unwrap()).collect();
    assert_eq!(decoded.len(), 3);
    assert!(decoded.contains(&"2, \"bob\""), "{decoded:?}");
    let bob = json(&env, &["keys", "profile", "--search", "bob"]);
    assert_eq!(bob.as_array().unwrap().len(), 1, "{bob:#}");
    let strict = json(&env, &["keys", "population", "--search", "paris"]);
    assert_eq!(strict[0]["decoded"], "city=\"Paris\", year=2024", "{strict:#}");
    assert!(json(&env, &["keys", "profile", "--search", "zzz"]).as_array().unwrap().is_empty());

    // Inspect: the JSON value, its TTL and encoding; a pickle value decoded too.
    let key = bob[0]["key"].as_str().unwrap();
    let entry = json(&env, &["inspect", key]);
    assert_eq!(entry["value"], serde_json::json!({"id": 2, "name": "bob", "admin": false}), "{entry:#}");
    assert_eq!(entry["encoding"], "json");
    // The default `expire`: a day.
    let ttl = entry["ttl_ms"].as_u64().expect("a TTL");
    assert!(ttl > 86_000_000 && ttl <= 86_400_000, "{ttl}");
    assert_eq!(entry["live"], true);
    let roster_key = json(&env, &["keys", "roster", "--search", "7"])[0]["key"].as_str().unwrap().to_owned();
    let roster = json(&env, &["inspect", &roster_key]);
    assert_eq!(roster["value"], serde_json::json!(["player-7-a", "player-7-b"]), "{roster:#}");
    let text = String::from_utf8(cli(&env).args(["inspect", key]).output().unwrap().stdout).unwrap();
    assert!(text.contains("\"bob\"") && text.contains("ttl:       86"), "{text}");
    cli(&env).args(["inspect", "cli-read:nothing"]).assert().failure();

    let stats = json(&env, &["stats"]);
    assert_eq!((stats["functions"].as_u64(), stats["entries"].as_u64()), (Some(3), Some(7)), "{stats:#}");
    assert_eq!(stats["backends"]["pickle"]["entries"], 2);
}

#[test]
fn flushes_by_tag_function_and_all_stay_within_the_prefix() {
    let env = filled("cli-flush");
    let mut raw = server().raw();
    let outside = ["cli-flushed:kept", "cli-flush", "elsewhere:cli-flush:x"];
    for key in outside {
        let () = redis::cmd("SET").arg(key).arg("mine").query(&mut raw).unwrap();
    }

    let tagged = json(&env, &["flush", "--tag", "user:1", "--tag", "team:8", "--yes"]);
    assert_eq!(tagged["entries"], 2, "{tagged:#}");
    let functions = json(&env, &["functions"]);
    assert_eq!(function(&functions, "profile").unwrap()["entries"], 2);
    assert_eq!(function(&functions, "roster").unwrap()["entries"], 1);

    let path = function(&functions, "roster").unwrap()["path"].as_str().unwrap().to_owned();
    let flushed = json(&env, &["flush", "--function", &path, "--yes"]);
    assert_eq!(flushed["entries"], 1, "{flushed:#}");
    let functions = json(&env, &["functions"]);
    assert!(function(&functions, "roster").is_none(), "{functions:#}");
    assert_eq!(function(&functions, "profile").unwrap()["entries"], 2);
    // The drain ran: no entry key of the function is left.
    assert!(server().keys("cli-flush:*::roster:*:k:*").is_empty());

    let all = json(&env, &["flush", "--all", "--yes"]);
    assert_eq!(all["entries"], 4, "{all:#}");
    assert!(json(&env, &["functions"]).as_array().unwrap().is_empty());
    let left = server().keys("cli-flush:*");
    assert!(left.iter().all(|k| kept_after_flush(k)), "{left:?}");
    for key in outside {
        let value: Option<String> = redis::cmd("GET").arg(key).query(&mut raw).unwrap();
        assert_eq!(value.as_deref(), Some("mine"), "{key} was touched");
    }
}

#[test]
fn a_flush_asks_first() {
    let env = filled("cli-ask");
    let out = cli(&env).args(["flush", "--all"]).write_stdin("n\n").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[y/N]") && stderr.contains("aborted"), "{stderr}");
    let functions = json(&env, &["functions"]);
    assert_eq!(function(&functions, "profile").unwrap()["entries"], 3);
    // Nothing read (a closed stdin) is a no too.
    cli(&env).args(["flush", "--tag", "user:1"]).write_stdin("").assert().failure();
    assert_eq!(function(&json(&env, &["functions"]), "profile").unwrap()["entries"], 3);
    // And `y` goes ahead.
    cli(&env).args(["flush", "--function", "profile"]).write_stdin("y\n").assert().success();
    assert!(function(&json(&env, &["functions"]), "profile").is_none());
}

/// A program that keeps running: it fills, waits for a line on stdin, calls again and
/// reports how often it computed.
#[test]
fn child_stays_up() {
    if !is_child() {
        return;
    }
    server();
    profile(1, "alice".to_owned());
    profile(1, "alice".to_owned());
    println!("READY runs={}", PROFILE_RUNS.load(std::sync::atomic::Ordering::SeqCst));
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    profile(1, "alice".to_owned());
    println!("AFTER runs={}", PROFILE_RUNS.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn a_running_program_recomputes_after_a_flush_by_tag() {
    let env = env("cli-live");
    let mut child = child_command("child_stays_up", &[("MEMO_TEST_KEY_PREFIX", "cli-live".to_owned())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |marker: &str| {
        // The harness may print `test child_stays_up ... ` on the same line first.
        let line =
            lines.by_ref().map(Result::unwrap).find(|l| l.contains(marker)).expect("the child reports");
        line[line.find(marker).unwrap()..].to_owned()
    };
    assert_eq!(next("READY"), "READY runs=1");
    let flushed = json(&env, &["flush", "--tag", "user:1", "--yes"]);
    assert_eq!(flushed["entries"], 1, "{flushed:#}");
    writeln!(child.stdin.take().unwrap()).unwrap();
    assert_eq!(next("AFTER"), "AFTER runs=2", "the running program served the flushed value");
    assert!(child.wait().unwrap().success());
}
