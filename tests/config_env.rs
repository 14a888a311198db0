//! Configuration as real processes meet it: a bad `MEMO_*` variable next to good ones,
//! and passwords in Redis URLs, which no message, error or log line may show. Each case
//! runs in a child process, since a process installs its configuration once.

mod support;

use std::process::{Output, Stdio};

use memo_alchemy::{distributed_memory_cache, json_cache, Config, RedisUrl};
use support::logs;
use support::{child_command, is_child, server};

#[json_cache]
fn remember(i: u64) -> u64 {
    i + 1
}

#[distributed_memory_cache]
fn remember_locally(i: u64) -> u64 {
    i + 2
}

fn run(test: &str, env: &[(&str, String)]) -> Output {
    let output = child_command(test, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("the child runs");
    assert!(
        output.status.success(),
        "{test} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

// ---- one bad variable ----

#[test]
fn child_with_one_bad_variable() {
    if !is_child() || std::env::var("MEMO_DEFAULT_LIMIT").ok().as_deref() != Some("abc") {
        return;
    }
    // No installed configuration: the environment's is used.
    let config = Config::global();
    assert_eq!(config.key_prefix(), "cfg");
    assert_eq!(
        config.default_limit(),
        Config::default().default_limit(),
        "the bad variable keeps its default"
    );
    assert_eq!(remember(1), 2);
    assert_eq!(remember(1), 2);
    assert_eq!(remember::cache_stats().hits, 1, "stored in the configured Redis");
}

/// Regression: `MEMO_DEFAULT_LIMIT=abc` made the implicit configuration drop every
/// variable, so traffic went to the default Redis URL under the default prefix.
#[test]
fn one_bad_variable_keeps_the_others_and_is_reported() {
    if is_child() {
        return;
    }
    server();
    let output = run(
        "child_with_one_bad_variable",
        &[
            ("MEMO_DEFAULT_LIMIT", "abc".to_owned()),
            ("MEMO_REDIS_URL", server().url()),
            ("MEMO_KEY_PREFIX", "cfg".to_owned()),
        ],
    );
    assert_eq!(server().keys("cfg:*::remember:*:k:*").len(), 1, "the entry is under the configured prefix");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("MEMO_DEFAULT_LIMIT") && stderr.contains("abc"),
        "the bad variable is on standard error: {stderr}"
    );
}

// ---- passwords ----

const SECRET_URLS: [(&str, &str); 2] = [
    ("unix:///tmp/memo-no-such.sock?pass=s3cret", "s3cret"),
    ("redis://default:s3/cret@127.0.0.1:1/0", "s3/cret"),
];

#[test]
fn child_with_a_password() {
    let Ok(url) = std::env::var("MEMO_TEST_SECRET_URL") else { return };
    let secret = SECRET_URLS.iter().find(|(u, _)| *u == url).unwrap().1;
    let fragment = &secret[..4];
    logs::capture();
    let config = Config::builder().redis_url(&url).build().unwrap();
    let mut shown =
        vec![config.redis_url().to_string(), format!("{:?}", config.redis_url()), format!("{config:?}")];
    config.install().unwrap();
    // Calls against the unreachable server, clears that fail, a subscription that fails.
    for i in 0..3 {
        assert_eq!(remember(i), i + 1);
        assert_eq!(remember_locally(i), i + 2);
    }
    let errors = [remember::cache_clear().unwrap_err(), remember_locally::cache_clear().unwrap_err()];
    for err in &errors {
        assert!(matches!(err, memo_alchemy::Error::Backend { .. }), "{err:?}");
        shown.push(err.to_string());
        shown.push(format!("{err:?}"));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let lines = logs::lines();
    assert!(!lines.is_empty(), "the failures were logged");
    shown.extend(lines.into_iter().map(|l| l.text));
    for text in &shown {
        assert!(!text.contains(secret) && !text.contains(fragment), "the password shows in: {text}");
    }
    println!("{}", shown.join("\n"));
}

/// Regression: the password of a `unix://` URL (`?pass=`) and one holding a `/` were
/// printed in `Display`, `Debug`, `Config`'s `Debug`, every `Error::Backend` and the
/// log.
#[test]
fn passwords_never_show_in_messages_errors_or_logs() {
    if is_child() {
        return;
    }
    for (url, secret) in SECRET_URLS {
        assert!(!RedisUrl::new(url).to_string().contains(secret));
        let output = run("child_with_a_password", &[("MEMO_TEST_SECRET_URL", url.to_owned())]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("***"), "the child showed the masked URL: {stdout}");
    }
}
