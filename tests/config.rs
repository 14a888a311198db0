//! Configuration: builder, environment variables, install, and redaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::{cache, Config, Error, RedisUrl};

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name| map.get(name).cloned()
}

#[test]
fn environment_values_are_read() {
    let config = Config::from_vars(vars(&[
        ("MEMO_DEFAULT_LIMIT", "50"),
        ("MEMO_DEFAULT_EXPIRE", "-1"),
        ("MEMO_DEFAULT_EXPIRE_JITTER", "15"),
        ("MEMO_KEY_PREFIX", "shop"),
        ("MEMO_REDIS_URL", "redis://cache:6380/2"),
        ("MEMO_REDIS_TIMEOUT_MS", "80"),
        ("MEMO_REDIS_BREAKER_FAILURES", "2"),
        ("MEMO_REDIS_BREAKER_COOLDOWN_MS", "1500"),
    ]))
    .unwrap();
    assert_eq!(config.redis_timeout(), std::time::Duration::from_millis(80));
    assert_eq!(config.breaker_failures(), 2);
    assert_eq!(config.breaker_cooldown(), std::time::Duration::from_millis(1500));
    assert_eq!(config.default_limit().max(), Some(50));
    assert_eq!(config.default_expire(), memo_alchemy::Expire::Never);
    assert_eq!(config.default_expire_jitter(), 15);
    let err = Config::from_vars(vars(&[("MEMO_DEFAULT_EXPIRE_JITTER", "95")])).unwrap_err();
    assert!(
        err.to_string().contains("MEMO_DEFAULT_EXPIRE_JITTER") && err.to_string().contains("95"),
        "{err}"
    );
    assert_eq!(config.key_prefix(), "shop");
    assert_eq!(config.redis_url().expose(), "redis://cache:6380/2");
}

#[test]
fn bad_environment_values_name_the_variable_and_the_value() {
    for (var, value) in [
        ("MEMO_DEFAULT_LIMIT", "ten"),
        ("MEMO_DEFAULT_LIMIT", "-2"),
        ("MEMO_DEFAULT_EXPIRE", "1.5"),
        ("MEMO_KEY_PREFIX", "has space"),
        ("MEMO_REDIS_URL", "http://nope"),
        ("MEMO_REDIS_TIMEOUT_MS", "0"),
        ("MEMO_REDIS_BREAKER_FAILURES", "many"),
        ("MEMO_REDIS_BREAKER_COOLDOWN_MS", "-5"),
    ] {
        let err = Config::from_vars(vars(&[(var, value)])).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Config { .. }), "{text}");
        assert!(text.contains(var), "{text} names {var}");
        assert!(text.contains(value), "{text} shows {value}");
    }
}

#[test]
fn builder_errors_name_the_setting() {
    let err = Config::builder().default_expire(-3).build().unwrap_err();
    assert!(err.to_string().contains("default_expire"), "{err}");
    assert!(err.to_string().contains("-3"), "{err}");
}

#[test]
fn passwords_never_print() {
    let url = RedisUrl::new("redis://admin:hunter2@db.internal:6379/0");
    assert_eq!(url.to_string(), "redis://admin:***@db.internal:6379/0");
    assert!(!format!("{url:?}").contains("hunter2"));
    let config = Config::builder().redis_url("rediss://:hunter2@db:6380").build().unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
    // Regression: an `@` in a query password ended the user info there and printed the
    // rest of the password.
    for url in ["unix:///run/redis.sock?pass=s3c@ret", "redis://u:p4ss@h:1/0?password=x@y&db=1"] {
        let shown = RedisUrl::new(url).to_string();
        for secret in ["s3c", "ret", "p4ss", "x@y"] {
            assert!(!(url.contains(secret) && shown.contains(secret)), "{secret} shows in {shown}");
        }
    }
    let err = Config::builder().redis_url("ftp://u:hunter2@db").build().unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn cluster_seed_nodes_are_checked_and_named() {
    let config = Config::from_vars(|name| {
        (name == "MEMO_REDIS_CLUSTER_URLS").then(|| "redis://a:7000, redis://b:7001,".to_owned())
    })
    .unwrap();
    let seeds: Vec<String> = config.redis_cluster_urls().iter().map(ToString::to_string).collect();
    assert_eq!(seeds, ["redis://a:7000", "redis://b:7001"]);
    let err = Config::builder().redis_cluster_urls(["redis://a:1", "b:2"]).build().unwrap_err();
    assert!(err.to_string().contains("redis_cluster_urls") && err.to_string().contains("b:2"), "{err}");
    let err =
        Config::builder().redis_cluster_urls(["redis://u:hunter2@a:1", "unix:///s"]).build().unwrap_err();
    assert!(err.to_string().contains("unix:///s"), "{err}");
    let err = Config::builder().redis_cluster_urls(["redis://a:1"]).key_prefix("app{1}").build().unwrap_err();
    assert!(err.to_string().contains("key_prefix") && err.to_string().contains("hash slot"), "{err}");
    assert!(Config::builder().key_prefix("app{1}").build().is_ok(), "braces are fine on one server");
    let shown =
        format!("{:?}", Config::builder().redis_cluster_urls(["redis://u:hunter2@a:1"]).build().unwrap());
    assert!(!shown.contains("hunter2"), "{shown}");
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// No `limit` in the attribute: the installed default (2) applies.
#[cache]
fn defaulted(a: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    a
}

#[test]
fn installed_defaults_apply_and_install_happens_once() {
    // This is the only test of this binary that makes a cached call or installs.
    Config::builder().default_limit(2).build().unwrap().install().unwrap();
    assert!(matches!(Config::builder().build().unwrap().install(), Err(Error::AlreadyInstalled)));
    for a in [1, 2, 3] {
        defaulted(a);
    }
    assert_eq!(defaulted::cache_stats().len, Some(2), "the installed default limit holds");
}

#[test]
fn postgres_settings_are_read_checked_and_redacted() {
    let config = Config::from_vars(vars(&[
        ("MEMO_POSTGRES_URL", "postgres://app:s3cret@db:5432/app"),
        ("MEMO_POSTGRES_SCHEMA", "cache_2"),
        ("MEMO_POSTGRES_TIMEOUT_MS", "900"),
        ("MEMO_POSTGRES_POOL_SIZE", "3"),
    ]))
    .unwrap();
    assert_eq!(config.postgres_url().expose(), "postgres://app:s3cret@db:5432/app");
    assert_eq!(config.postgres_url().to_string(), "postgres://app:***@db:5432/app");
    assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
    assert_eq!(config.postgres_schema(), "cache_2");
    assert_eq!(config.postgres_timeout(), std::time::Duration::from_millis(900));
    assert_eq!(config.postgres_pool_size(), 3);
    let defaults = Config::default();
    assert_eq!(defaults.postgres_schema(), "memo_alchemy");
    assert_eq!(defaults.postgres_pool_size(), 8);

    for (var, value) in [
        ("MEMO_POSTGRES_URL", "mysql://root:s3cret@db/app"),
        ("MEMO_POSTGRES_SCHEMA", "Memo; DROP TABLE users"),
        ("MEMO_POSTGRES_SCHEMA", "1abc"),
        ("MEMO_POSTGRES_TIMEOUT_MS", "0"),
        ("MEMO_POSTGRES_POOL_SIZE", "0"),
    ] {
        let err = Config::from_vars(vars(&[(var, value)])).unwrap_err().to_string();
        assert!(err.contains(var), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
    let err = Config::builder().postgres_schema("a-b").build().unwrap_err().to_string();
    assert!(err.contains("postgres_schema") && err.contains("a-b"), "{err}");
    let err = Config::builder().postgres_url("postgres//x").build().unwrap_err().to_string();
    assert!(err.contains("postgres_url"), "{err}");
}
