//! Process-wide configuration: defaults for `limit` and `expire`, the key prefix and
//! the Redis URL.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{Error, Expire, Limit};

/// The default `limit` when neither the attribute nor the environment sets one: 1000.
pub const DEFAULT_LIMIT: Limit = Limit::Max(NonZeroUsize::new(1000).unwrap());
/// The default `expire`: one day.
pub const DEFAULT_EXPIRE: Expire = Expire::After(Duration::from_secs(86_400));
/// The default prefix of every key.
pub const DEFAULT_KEY_PREFIX: &str = "memo";
/// The default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
/// The default bound on one Redis command, connecting included: 250 ms.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// The default PostgreSQL URL of the postgres backend.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The default schema of the postgres backend's tables.
pub const DEFAULT_POSTGRES_SCHEMA: &str = "memo_alchemy";
/// The default bound on one PostgreSQL operation, connecting included: 500 ms.
pub const DEFAULT_POSTGRES_TIMEOUT: Duration = Duration::from_millis(500);
/// The default number of connections the postgres backend opens at most: 8.
pub const DEFAULT_POSTGRES_POOL_SIZE: usize = 8;
/// Consecutive Redis failures that open the circuit breaker.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// How long an open breaker skips Redis before probing again: 5 s.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(5);

static INSTALLED: OnceLock<Config> = OnceLock::new();

/// The configuration of memo-alchemy.
///
/// Build one with [`Config::builder`] or read it from `MEMO_*` variables with
/// [`Config::from_env`], then [`install`](Config::install) it before the first cached
/// call. Without an installed config the library reads the environment on first use.
///
/// ```
/// use memo_core::Config;
///
/// let config = Config::builder().default_limit(500).key_prefix("app").build()?;
/// assert_eq!(config.default_limit().max(), Some(500));
/// # Ok::<(), memo_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    default_limit: Limit,
    default_expire: Expire,
    default_expire_jitter: u8,
    key_prefix: String,
    redis_url: RedisUrl,
    redis_cluster_urls: Vec<RedisUrl>,
    redis_timeout: Duration,
    breaker_failures: u32,
    breaker_cooldown: Duration,
    postgres: PostgresSettings,
}

/// Where and how the postgres backend stores values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PostgresSettings {
    url: PostgresUrl,
    schema: String,
    timeout: Duration,
    pool_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        ConfigBuilder::default().build().expect("the defaults are valid")
    }
}

impl Config {
    /// Starts a builder from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Reads `MEMO_DEFAULT_LIMIT`, `MEMO_DEFAULT_EXPIRE`, `MEMO_DEFAULT_EXPIRE_JITTER`, `MEMO_KEY_PREFIX`,
    /// `MEMO_REDIS_URL`, `MEMO_REDIS_CLUSTER_URLS` (comma-separated), `MEMO_REDIS_TIMEOUT_MS`,
    /// `MEMO_REDIS_BREAKER_FAILURES`, `MEMO_REDIS_BREAKER_COOLDOWN_MS`, `MEMO_POSTGRES_URL`,
    /// `MEMO_POSTGRES_SCHEMA`, `MEMO_POSTGRES_TIMEOUT_MS` and `MEMO_POSTGRES_POOL_SIZE`;
    /// unset variables keep their defaults.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and its value when one cannot be used.
    pub fn from_env() -> Result<Config, Error> {
        Config::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Config::from_env), reading variables through `var`
    /// (a map in tests, a secrets store in services).
    ///
    /// ```
    /// use memo_core::Config;
    ///
    /// let err = Config::from_vars(|name| (name == "MEMO_DEFAULT_LIMIT").then(|| "-7".to_owned()))
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("MEMO_DEFAULT_LIMIT"));
    /// assert!(err.to_string().contains("-7"));
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and its value when one cannot be used.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let (builder, mut rejected) = ConfigBuilder::from_vars(&var);
        match rejected.is_empty() {
            true => builder.build_named(Names::ENV),
            false => Err(rejected.swap_remove(0)),
        }
    }

    /// Like [`from_vars`](Config::from_vars), but a variable that cannot be used is
    /// left at its default instead of failing the whole configuration: returns the
    /// configuration of every usable variable, and an error for each other one.
    ///
    /// ```
    /// use memo_core::{Config, DEFAULT_LIMIT};
    ///
    /// let (config, rejected) = Config::from_vars_keeping_valid(|name| match name {
    ///     "MEMO_DEFAULT_LIMIT" => Some("abc".to_owned()),
    ///     "MEMO_KEY_PREFIX" => Some("cfg".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(config.key_prefix(), "cfg");
    /// assert_eq!(config.default_limit(), DEFAULT_LIMIT);
    /// assert!(rejected[0].to_string().contains("MEMO_DEFAULT_LIMIT"));
    /// ```
    pub fn from_vars_keeping_valid(var: impl Fn(&str) -> Option<String>) -> (Config, Vec<Error>) {
        let (mut builder, mut rejected) = ConfigBuilder::from_vars(&var);
        loop {
            match builder.clone().build_named(Names::ENV) {
                Ok(config) => return (config, rejected),
                Err(err) => {
                    let reset = matches!(&err, Error::Config { setting, .. } if builder.reset(setting));
                    rejected.push(err);
                    if !reset {
                        return (Config::default(), rejected);
                    }
                }
            }
        }
    }

    /// Makes this the process-wide configuration.
    ///
    /// # Errors
    /// [`Error::AlreadyInstalled`] if a configuration is already in force, either
    /// installed or read from the environment by an earlier cached call.
    pub fn install(self) -> Result<(), Error> {
        INSTALLED.set(self).map_err(|_| Error::AlreadyInstalled)
    }

    /// The configuration in force: the installed one, else the environment's.
    ///
    /// A `MEMO_*` variable that cannot be used keeps its default while every other
    /// variable still applies, and is reported on standard error and in the log
    /// (`ERROR`), so that a typo cannot silently send traffic elsewhere.
    pub fn global() -> &'static Config {
        INSTALLED.get_or_init(|| {
            let (config, rejected) = Config::from_vars_keeping_valid(|name| std::env::var(name).ok());
            for err in rejected {
                tracing::error!(%err, "memo-alchemy: this MEMO_* variable keeps its default");
                eprintln!(
                    "memo-alchemy: {err}; this variable keeps its default, the other MEMO_* variables apply"
                );
            }
            config
        })
    }

    /// `limit` for functions that do not set one.
    pub fn default_limit(&self) -> Limit {
        self.default_limit
    }

    /// `expire` for functions that do not set one.
    pub fn default_expire(&self) -> Expire {
        self.default_expire
    }

    /// `expire_jitter` (percent) for functions that do not set one: 0, none, by default.
    pub fn default_expire_jitter(&self) -> u8 {
        self.default_expire_jitter
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The Redis server used by the Redis backends.
    pub fn redis_url(&self) -> &RedisUrl {
        &self.redis_url
    }

    /// The seed nodes of a Redis Cluster, when the Redis backends use one instead of
    /// [`redis_url`](Config::redis_url); empty for a single server.
    pub fn redis_cluster_urls(&self) -> &[RedisUrl] {
        &self.redis_cluster_urls
    }

    /// The longest a cached call waits for Redis (connecting or one command) before it
    /// computes directly.
    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }

    /// The PostgreSQL database of the postgres backend.
    pub fn postgres_url(&self) -> &PostgresUrl {
        &self.postgres.url
    }

    /// The schema that holds the postgres backend's tables (created on first use).
    pub fn postgres_schema(&self) -> &str {
        &self.postgres.schema
    }

    /// The longest a cached call waits for PostgreSQL (a connection from the pool,
    /// connecting, one statement) before it computes directly.
    pub fn postgres_timeout(&self) -> Duration {
        self.postgres.timeout
    }

    /// The most connections the postgres backend opens in this process.
    pub fn postgres_pool_size(&self) -> usize {
        self.postgres.pool_size
    }

    /// Consecutive failures of a shared store (Redis, PostgreSQL) after which it is
    /// skipped for [`breaker_cooldown`](Config::breaker_cooldown).
    pub fn breaker_failures(&self) -> u32 {
        self.breaker_failures
    }

    /// How long a shared store is skipped once its breaker opens.
    pub fn breaker_cooldown(&self) -> Duration {
        self.breaker_cooldown
    }
}

/// Builds a [`Config`]; every setter takes and returns the builder.
#[derive(Debug, Clone)]
#[must_use]
pub struct ConfigBuilder {
    default_limit: i64,
    default_expire: i64,
    default_expire_jitter: i64,
    key_prefix: String,
    redis_url: String,
    redis_cluster_urls: Vec<String>,
    redis_timeout: Duration,
    breaker_failures: u32,
    breaker_cooldown: Duration,
    postgres_url: String,
    postgres_schema: String,
    postgres_timeout: Duration,
    postgres_pool_size: usize,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder {
            default_limit: DEFAULT_LIMIT.to_setting(),
            default_expire: DEFAULT_EXPIRE.to_setting(),
            default_expire_jitter: 0,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            redis_cluster_urls: Vec::new(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
            postgres_url: DEFAULT_POSTGRES_URL.to_owned(),
            postgres_schema: DEFAULT_POSTGRES_SCHEMA.to_owned(),
            postgres_timeout: DEFAULT_POSTGRES_TIMEOUT,
            postgres_pool_size: DEFAULT_POSTGRES_POOL_SIZE,
        }
    }
}

/// The names a setting is reported under: builder method or environment variable.
struct Names {
    limit: &'static str,
    expire: &'static str,
    jitter: &'static str,
    prefix: &'static str,
    redis_url: &'static str,
    redis_cluster_urls: &'static str,
    redis_timeout: &'static str,
    breaker_failures: &'static str,
    postgres_url: &'static str,
    postgres_schema: &'static str,
    postgres_timeout: &'static str,
    postgres_pool_size: &'static str,
}

impl Names {
    const BUILDER: Names = Names {
        limit: "default_limit",
        expire: "default_expire",
        jitter: "default_expire_jitter",
        prefix: "key_prefix",
        redis_url: "redis_url",
        redis_cluster_urls: "redis_cluster_urls",
        redis_timeout: "redis_timeout",
        breaker_failures: "breaker_failures",
        postgres_url: "postgres_url",
        postgres_schema: "postgres_schema",
        postgres_timeout: "postgres_timeout",
        postgres_pool_size: "postgres_pool_size",
    };
    const ENV: Names = Names {
        limit: "MEMO_DEFAULT_LIMIT",
        expire: "MEMO_DEFAULT_EXPIRE",
        jitter: "MEMO_DEFAULT_EXPIRE_JITTER",
        prefix: "MEMO_KEY_PREFIX",
        redis_url: "MEMO_REDIS_URL",
        redis_cluster_urls: "MEMO_REDIS_CLUSTER_URLS",
        redis_timeout: "MEMO_REDIS_TIMEOUT_MS",
        breaker_failures: "MEMO_REDIS_BREAKER_FAILURES",
        postgres_url: "MEMO_POSTGRES_URL",
        postgres_schema: "MEMO_POSTGRES_SCHEMA",
        postgres_timeout: "MEMO_POSTGRES_TIMEOUT_MS",
        postgres_pool_size: "MEMO_POSTGRES_POOL_SIZE",
    };
}

impl ConfigBuilder {
    /// The builder of the `MEMO_*` variables that parse, and an error for each other one.
    fn from_vars(var: &impl Fn(&str) -> Option<String>) -> (ConfigBuilder, Vec<Error>) {
        let mut builder = Config::builder();
        let mut rejected = Vec::new();
        let mut keep = |result: Result<(), Error>| {
            if let Err(err) = result {
                rejected.push(err);
            }
        };
        if let Some(v) = var("MEMO_DEFAULT_LIMIT") {
            keep(parse_int("MEMO_DEFAULT_LIMIT", &v).map(|n| builder.default_limit = n));
        }
        if let Some(v) = var("MEMO_DEFAULT_EXPIRE") {
            keep(parse_int("MEMO_DEFAULT_EXPIRE", &v).map(|n| builder.default_expire = n));
        }
        if let Some(v) = var("MEMO_DEFAULT_EXPIRE_JITTER") {
            keep(parse_int("MEMO_DEFAULT_EXPIRE_JITTER", &v).map(|n| builder.default_expire_jitter = n));
        }
        if let Some(v) = var("MEMO_KEY_PREFIX") {
            builder.key_prefix = v;
        }
        if let Some(v) = var("MEMO_REDIS_URL") {
            builder.redis_url = v;
        }
        if let Some(v) = var("MEMO_REDIS_CLUSTER_URLS") {
            builder.redis_cluster_urls =
                v.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
        }
        if let Some(v) = var("MEMO_REDIS_TIMEOUT_MS") {
            keep(
                parse_positive("MEMO_REDIS_TIMEOUT_MS", &v)
                    .map(|n| builder.redis_timeout = Duration::from_millis(n)),
            );
        }
        if let Some(v) = var("MEMO_REDIS_BREAKER_FAILURES") {
            keep(
                parse_positive("MEMO_REDIS_BREAKER_FAILURES", &v)
                    .map(|n| builder.breaker_failures = u32::try_from(n).unwrap_or(u32::MAX)),
            );
        }
        if let Some(v) = var("MEMO_REDIS_BREAKER_COOLDOWN_MS") {
            keep(
                parse_positive("MEMO_REDIS_BREAKER_COOLDOWN_MS", &v)
                    .map(|n| builder.breaker_cooldown = Duration::from_millis(n)),
            );
        }
        if let Some(v) = var("MEMO_POSTGRES_URL") {
            builder.postgres_url = v;
        }
        if let Some(v) = var("MEMO_POSTGRES_SCHEMA") {
            builder.postgres_schema = v;
        }
        if let Some(v) = var("MEMO_POSTGRES_TIMEOUT_MS") {
            keep(
                parse_positive("MEMO_POSTGRES_TIMEOUT_MS", &v)
                    .map(|n| builder.postgres_timeout = Duration::from_millis(n)),
            );
        }
        if let Some(v) = var("MEMO_POSTGRES_POOL_SIZE") {
            keep(
                parse_positive("MEMO_POSTGRES_POOL_SIZE", &v)
                    .map(|n| builder.postgres_pool_size = usize::try_from(n).unwrap_or(usize::MAX)),
            );
        }
        (builder, rejected)
    }

    /// Puts the setting named `setting` (a builder or environment name) back to its
    /// default; `false` if it names none.
    fn reset(&mut self, setting: &str) -> bool {
        let default = ConfigBuilder::default();
        [Names::BUILDER, Names::ENV].iter().any(|names| {
            match setting {
                s if s == names.limit => self.default_limit = default.default_limit,
                s if s == names.expire => self.default_expire = default.default_expire,
                s if s == names.jitter => self.default_expire_jitter = default.default_expire_jitter,
                s if s == names.prefix => self.key_prefix.clone_from(&default.key_prefix),
                s if s == names.redis_url => self.redis_url.clone_from(&default.redis_url),
                s if s == names.redis_cluster_urls => self.redis_cluster_urls.clear(),
                s if s == names.redis_timeout => self.redis_timeout = default.redis_timeout,
                s if s == names.breaker_failures => self.breaker_failures = default.breaker_failures,
                s if s == names.postgres_url => self.postgres_url.clone_from(&default.postgres_url),
                s if s == names.postgres_schema => self.postgres_schema.clone_from(&default.postgres_schema),
                s if s == names.postgres_timeout => self.postgres_timeout = default.postgres_timeout,
                s if s == names.postgres_pool_size => self.postgres_pool_size = default.postgres_pool_size,
                _ => return false,
            }
            true
        })
    }

    /// Most live entries per function when the attribute sets no `limit`: `-1` none,
    /// `0` no caching.
    pub fn default_limit(mut self, limit: i64) -> Self {
        self.default_limit = limit;
        self
    }

    /// Seconds an entry lives when the attribute sets no `expire`: `-1` forever, `0` no
    /// caching.
    pub fn default_expire(mut self, expire: i64) -> Self {
        self.default_expire = expire;
        self
    }

    /// How far, in percent either way, entries' lifetimes are spread around `expire`
    /// when the attribute sets no `expire_jitter`: 0 to 90.
    pub fn default_expire_jitter(mut self, percent: u8) -> Self {
        self.default_expire_jitter = i64::from(percent);
        self
    }

    /// The prefix of every key (Redis keys start with it).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The Redis server, `redis://[user:password@]host[:port][/db]` or `rediss://` for TLS.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = url.into();
        self
    }

    /// The seed nodes of a Redis Cluster (`redis://host:port` each; a few are enough,
    /// the rest are discovered). When set, the Redis backends use the cluster and
    /// [`redis_url`](ConfigBuilder::redis_url) is not used.
    pub fn redis_cluster_urls<I>(mut self, urls: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.redis_cluster_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// The longest a cached call waits for Redis before computing directly.
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis_timeout = timeout;
        self
    }

    /// Consecutive failures that make the library skip Redis for a cool-down.
    pub fn breaker_failures(mut self, failures: u32) -> Self {
        self.breaker_failures = failures;
        self
    }

    /// The PostgreSQL database of the postgres backend:
    /// `postgres://[user[:password]@]host[:port]/database[?options]` (or `postgresql://`).
    pub fn postgres_url(mut self, url: impl Into<String>) -> Self {
        self.postgres_url = url.into();
        self
    }

    /// The schema of the postgres backend's tables, created on first use: a plain
    /// lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.postgres_schema = schema.into();
        self
    }

    /// The longest a cached call waits for PostgreSQL before computing directly.
    pub fn postgres_timeout(mut self, timeout: Duration) -> Self {
        self.postgres_timeout = timeout;
        self
    }

    /// The most connections the postgres backend opens in this process.
    pub fn postgres_pool_size(mut self, size: usize) -> Self {
        self.postgres_pool_size = size;
        self
    }

    /// How long a shared store is skipped once its breaker opens.
    pub fn breaker_cooldown(mut self, cooldown: Duration) -> Self {
        self.breaker_cooldown = cooldown;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting and its value when one cannot be used.
    pub fn build(self) -> Result<Config, Error> {
        self.build_named(Names::BUILDER)
    }

    fn build_named(self, names: Names) -> Result<Config, Error> {
        let default_limit = Limit::from_setting(self.default_limit).map_err(|reason| Error::Config {
            setting: names.limit,
            value: self.default_limit.to_string(),
            reason: reason.into(),
        })?;
        let default_expire = Expire::from_setting(self.default_expire).map_err(|reason| Error::Config {
            setting: names.expire,
            value: self.default_expire.to_string(),
            reason: reason.into(),
        })?;
        if self.key_prefix.is_empty() || self.key_prefix.contains(char::is_whitespace) {
            return Err(Error::Config {
                setting: names.prefix,
                value: self.key_prefix,
                reason: "use a non-empty prefix without spaces, such as `memo`".into(),
            });
        }
        let postgres = self.postgres(&names)?;
        let url = RedisUrl(self.redis_url);
        if !(url.0.starts_with("redis://") || url.0.starts_with("rediss://") || url.0.starts_with("unix://"))
        {
            return Err(Error::Config {
                setting: names.redis_url,
                value: url.to_string(),
                reason: "use redis://host:port/db, rediss:// for TLS or unix:///path".into(),
            });
        }
        let redis_cluster_urls: Vec<RedisUrl> = self.redis_cluster_urls.into_iter().map(RedisUrl).collect();
        if let Some(bad) =
            redis_cluster_urls.iter().find(|u| !(u.0.starts_with("redis://") || u.0.starts_with("rediss://")))
        {
            return Err(Error::Config {
                setting: names.redis_cluster_urls,
                value: bad.to_string(),
                reason: "use redis://host:port or rediss://host:port for each seed node".into(),
            });
        }
        if !redis_cluster_urls.is_empty() && self.key_prefix.contains(['{', '}']) {
            return Err(Error::Config {
                setting: names.prefix,
                value: self.key_prefix,
                reason: "on a Redis Cluster, braces in the prefix would put every key in one hash slot: \
                         use a prefix without `{` or `}`"
                    .into(),
            });
        }
        if self.redis_timeout.is_zero() {
            return Err(Error::Config {
                setting: names.redis_timeout,
                value: format!("{:?}", self.redis_timeout),
                reason: "use a positive timeout, such as 250 ms".into(),
            });
        }
        if self.breaker_failures == 0 {
            return Err(Error::Config {
                setting: names.breaker_failures,
                value: "0".into(),
                reason: "use at least 1 failure before the breaker opens".into(),
            });
        }
        let default_expire_jitter =
            crate::jitter_from_setting(self.default_expire_jitter).map_err(|reason| Error::Config {
                setting: names.jitter,
                value: self.default_expire_jitter.to_string(),
                reason: reason.into(),
            })?;
        Ok(Config {
            default_limit,
            default_expire,
            default_expire_jitter,
            key_prefix: self.key_prefix,
            redis_url: url,
            redis_cluster_urls,
            redis_timeout: self.redis_timeout,
            breaker_failures: self.breaker_failures,
            breaker_cooldown: self.breaker_cooldown,
            postgres,
        })
    }

    /// Checks the postgres backend's settings.
    fn postgres(&self, names: &Names) -> Result<PostgresSettings, Error> {
        let url = PostgresUrl::new(self.postgres_url.clone());
        if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
            return Err(Error::Config {
                setting: names.postgres_url,
                value: url.to_string(),
                reason: "use postgres://user:password@host:port/database".into(),
            });
        }
        let schema = &self.postgres_schema;
        let plain = schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(Error::Config {
                setting: names.postgres_schema,
                value: schema.clone(),
                reason: "use a lower-case identifier of letters, digits and `_`, such as `memo_alchemy`"
                    .into(),
            });
        }
        if self.postgres_timeout.is_zero() {
            return Err(Error::Config {
                setting: names.postgres_timeout,
                value: format!("{:?}", self.postgres_timeout),
                reason: "use a positive timeout, such as 500 ms".into(),
            });
        }
        if self.postgres_pool_size == 0 {
            return Err(Error::Config {
                setting: names.postgres_pool_size,
                value: "0".into(),
                reason: "use at least 1 connection".into(),
            });
        }
        Ok(PostgresSettings {
            url,
            schema: schema.clone(),
            timeout: self.postgres_timeout,
            pool_size: self.postgres_pool_size,
        })
    }
}

fn parse_int(setting: &'static str, value: &str) -> Result<i64, Error> {
    value.trim().parse().map_err(|_| Error::Config {
        setting,
        value: value.to_owned(),
        reason: "expected a whole number: -1 for none, 0 to turn caching off".into(),
    })
}

fn parse_positive(setting: &'static str, value: &str) -> Result<u64, Error> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::Config {
            setting,
            value: value.to_owned(),
            reason: "expected a positive whole number".into(),
        }),
    }
}

/// A Redis URL whose password never appears when it is printed.
///
/// ```
/// use memo_core::RedisUrl;
///
/// let url = RedisUrl::new("redis://app:s3cret@cache:6379/0");
/// assert_eq!(url.to_string(), "redis://app:***@cache:6379/0");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// assert!(url.expose().contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> RedisUrl {
        RedisUrl(url.into())
    }

    /// The URL with its password, for opening a connection. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` (an error message, say) with every secret of this URL masked.
    ///
    /// ```
    /// use memo_core::RedisUrl;
    ///
    /// let url = RedisUrl::new("unix:///run/redis.sock?db=1&pass=s3cret");
    /// assert_eq!(url.redact("cannot connect (pass s3cret)"), "cannot connect (pass ***)");
    /// ```
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.replace(&self.0, &self.to_string());
        for (start, end) in self.secrets() {
            let secret = &self.0[start..end];
            if !secret.is_empty() {
                text = text.replace(secret, "***");
            }
        }
        text
    }

    /// The byte ranges of the secrets in the URL: the password of the user info (all
    /// of the user info when it has no `:`), and the values of `pass` and `password`
    /// query parameters.
    ///
    /// The user info runs to the last `@`, not to the first `/`: a password may hold
    /// a `/`, and masking too much is the safe mistake.
    fn secrets(&self) -> Vec<(usize, usize)> {
        let url = &self.0;
        let mut secrets = Vec::new();
        let authority = url.find("://").map_or(0, |i| i + 3);
        // The user info ends at the last `@` before the query (a query password may
        // hold an `@` too).
        let before_query = url.find('?').unwrap_or(url.len());
        if let Some(at) = url[..before_query].rfind('@').filter(|&at| at >= authority) {
            let password = url[authority..at].find(':').map_or(authority, |colon| authority + colon + 1);
            secrets.push((password, at));
        }
        if let Some(query) = url.find('?') {
            let mut offset = query + 1;
            for pair in url[query + 1..].split('&') {
                if let Some((name, _)) = pair.split_once('=') {
                    if name.eq_ignore_ascii_case("pass") || name.eq_ignore_ascii_case("password") {
                        secrets.push((offset + name.len() + 1, offset + pair.len()));
                    }
                }
                offset += pair.len() + 1;
            }
        }
        secrets
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secrets = self.secrets();
        secrets.sort_unstable();
        let mut shown = 0;
        for (start, end) in secrets {
            if start < shown {
                // Overlapping secrets: mask through the farther end.
                shown = shown.max(end);
                continue;
            }
            f.write_str(&self.0[shown..start])?;
            f.write_str("***")?;
            shown = end;
        }
        f.write_str(&self.0[shown..])
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// A PostgreSQL URL whose password never appears when it is printed.
///
/// ```
/// use memo_core::PostgresUrl;
///
/// let url = PostgresUrl::new("postgres://app:s3cret@db:5432/app?sslmode=disable");
/// assert_eq!(url.to_string(), "postgres://app:***@db:5432/app?sslmode=disable");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// assert_eq!(url.redact("password authentication failed: s3cret"), "password authentication failed: ***");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(RedisUrl);

impl PostgresUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> PostgresUrl {
        PostgresUrl(RedisUrl::new(url))
    }

    /// The URL with its password, for opening a connection. Do not log it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// `text` (an error message, say) with every secret of this URL masked: the
    /// password of the user info and of a `password` query parameter.
    pub fn redact(&self, text: &str) -> String {
        self.0.redact(text)
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}
