//! The two stores behind one interface: Redis (single server or cluster, through
//! `memo_backends::redis::admin`) and PostgreSQL (`memo_backends::postgres::admin`).

use std::collections::BTreeMap;

use memo_backends::postgres::admin as pg;
use memo_backends::redis::admin::{self, parse_key};
use memo_backends::{DistributedMemoryBackend, JsonBackend, PostgresBackend};
use memo_core::{BackendKind, Config};
use serde_json::{json, Value};

use crate::{decode, CliError};

/// Where the entries are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Redis,
    Postgres,
}

/// A cached function found in the store.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub(crate) path: String,
    pub(crate) backend: String,
    pub(crate) namespace: String,
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
    pub(crate) tags: Vec<String>,
    /// What the Redis scan found, for its clear.
    redis: Option<admin::StoredFunction>,
}

impl Function {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "backend": self.backend,
            "namespace": self.namespace,
            "entries": self.entries,
            "bytes": self.bytes,
            "tags": self.tags,
        })
    }
}

/// A live entry.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// Its key: the Redis key, or for PostgreSQL `{namespace}:k:{key column}` alike.
    pub(crate) key: String,
    pub(crate) namespace: String,
    pub(crate) path: String,
    /// The encoded arguments.
    pub(crate) arguments: String,
    /// The arguments, readable (see [`decode::arguments`]).
    pub(crate) decoded: String,
    pub(crate) bytes: u64,
}

impl Key {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "function": self.path,
            "namespace": self.namespace,
            "arguments": self.arguments,
            "decoded": self.decoded,
            "bytes": self.bytes,
        })
    }
}

/// One entry, read whole.
#[derive(Debug, Clone)]
pub(crate) struct Inspected {
    pub(crate) key: String,
    pub(crate) path: String,
    pub(crate) backend: String,
    pub(crate) decoded: String,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) bytes: u64,
    /// `json`, `messagepack` or `jsonb`, and whether the value is stamped.
    pub(crate) encoding: String,
    pub(crate) live: bool,
    pub(crate) written_ms: Option<i64>,
    pub(crate) tags: Vec<String>,
    pub(crate) payload: Vec<u8>,
    pub(crate) value: Result<Value, String>,
}

impl Inspected {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "function": self.path,
            "backend": self.backend,
            "arguments": self.decoded,
            "ttl_ms": self.ttl_ms,
            "bytes": self.bytes,
            "encoding": self.encoding,
            "live": self.live,
            "written_ms": self.written_ms,
            "tags": self.tags,
            "value": self.value.as_ref().ok(),
            "error": self.value.as_ref().err(),
        })
    }
}

/// The functions FUNCTION names: by namespace, by path, or by the end of a path
/// (`name`, `module::name`) when only one path ends so.
pub(crate) fn choose<'f>(functions: &'f [Function], wanted: &str) -> Result<Vec<&'f Function>, CliError> {
    let exact: Vec<&Function> =
        functions.iter().filter(|f| f.namespace == wanted || f.path == wanted).collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let suffix = format!("::{wanted}");
    let ending: Vec<&Function> = functions.iter().filter(|f| f.path.ends_with(&suffix)).collect();
    let mut paths: Vec<&str> = ending.iter().map(|f| f.path.as_str()).collect();
    paths.dedup();
    match paths.len() {
        0 => Err(CliError::NotFound(format!(
            "no cached function {wanted} under the prefix {:?} (see `memo-alchemy functions`)",
            Config::global().key_prefix()
        ))),
        1 => Ok(ending),
        _ => Err(CliError::NotFound(format!("{wanted} is ambiguous: {}", paths.join(", ")))),
    }
}

fn path_of(namespace: &str) -> (String, String) {
    parse_key(Config::global().key_prefix(), namespace)
        .map_or_else(|| (namespace.to_owned(), String::new()), |n| (n.path, n.backend))
}

impl Store {
    /// The functions with live entries (Redis: or an index).
    pub(crate) fn functions(self, progress: &(dyn Fn(u64) + Sync)) -> Result<Vec<Function>, CliError> {
        Ok(self.entries(progress)?.0)
    }

    /// The functions and every live entry.
    pub(crate) fn entries(
        self,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(Vec<Function>, Vec<Key>), CliError> {
        match self {
            Store::Redis => {
                let scan = admin::scan(progress)?;
                Ok(redis_listing(scan))
            }
            Store::Postgres => {
                let functions: Vec<Function> = pg::functions()?
                    .into_iter()
                    .map(|f| {
                        let (path, backend) = path_of(&f.namespace);
                        Function {
                            path,
                            backend,
                            namespace: f.namespace,
                            entries: f.entries,
                            bytes: f.bytes,
                            tags: Vec::new(),
                            redis: None,
                        }
                    })
                    .collect();
                let keys = pg::entries()?
                    .into_iter()
                    .map(|e| Key {
                        key: format!("{}:k:{}", e.namespace, e.key),
                        path: path_of(&e.namespace).0,
                        decoded: decode::arguments(&e.key),
                        namespace: e.namespace,
                        arguments: e.key,
                        bytes: e.bytes,
                    })
                    .collect();
                Ok((functions, keys))
            }
        }
    }

    /// The entry `key` (as `keys` lists it).
    pub(crate) fn inspect(self, key: &str) -> Result<Option<Inspected>, CliError> {
        let not_an_entry = || {
            CliError::NotFound(format!(
                "{key} is not an entry key under the prefix {:?} (see `memo-alchemy keys`)",
                Config::global().key_prefix()
            ))
        };
        match self {
            Store::Redis => {
                let Some(found) = admin::inspect(key)? else { return Ok(None) };
                let arguments = found.name.arguments().unwrap_or_default().to_owned();
                let backend = found.name.backend.clone();
                let encoding = match backend.as_str() {
                    "pickle" => "pickle: MessagePack (rmp-serde, named) in the MP2 envelope",
                    _ => "json",
                };
                let stamped = if found.written_ms.is_some() { ", stamped with its write time" } else { "" };
                Ok(Some(Inspected {
                    key: key.to_owned(),
                    path: found.name.path.clone(),
                    decoded: decode::arguments(&arguments),
                    ttl_ms: found.ttl_ms,
                    bytes: found.bytes,
                    encoding: format!("{encoding}{stamped}"),
                    live: found.live,
                    written_ms: found.written_ms.and_then(|ms| i64::try_from(ms).ok()),
                    tags: Vec::new(),
                    value: decode::value(&backend, &found.payload),
                    payload: found.payload,
                    backend,
                }))
            }
            Store::Postgres => {
                let name = parse_key(Config::global().key_prefix(), key).ok_or_else(not_an_entry)?;
                let arguments = name.arguments().ok_or_else(not_an_entry)?;
                let Some(found) = pg::inspect(&name.namespace, arguments)? else { return Ok(None) };
                Ok(Some(Inspected {
                    key: key.to_owned(),
                    path: name.path.clone(),
                    backend: name.backend.clone(),
                    decoded: decode::arguments(arguments),
                    ttl_ms: found.ttl_ms,
                    bytes: found.entry.bytes,
                    encoding: "jsonb".to_owned(),
                    live: true,
                    written_ms: found.written_ms,
                    tags: found.entry.tags,
                    payload: Vec::new(),
                    value: Ok(found.value),
                }))
            }
        }
    }

    /// Invalidates `tags` everywhere, as `memo_alchemy::invalidate_tags` would: Redis's
    /// tagged functions (json and pickle, listed in the tagged hash) and every
    /// process's `distributed_memory` and memory functions (through the bus); or
    /// PostgreSQL's rows. Returns the live entries removed from the store.
    pub(crate) fn flush_tags(self, tags: &[String]) -> Result<usize, CliError> {
        match self {
            Store::Redis => {
                let removed = JsonBackend.invalidate_tags(tags)?;
                DistributedMemoryBackend.invalidate_tags(tags)?;
                Ok(removed)
            }
            Store::Postgres => Ok(PostgresBackend.invalidate_tags(tags)?),
        }
    }

    /// Clears `function` through the library's own full clear.
    pub(crate) fn clear(self, function: &Function) -> Result<usize, CliError> {
        match (self, &function.redis) {
            (Store::Redis, Some(found)) => Ok(admin::clear(found)?),
            (Store::Redis, None) => Ok(0),
            (Store::Postgres, _) => Ok(pg::clear(&function.namespace)?),
        }
    }

    /// After clears: removes the cleared entries now (Redis's drain) and, with `all`,
    /// whatever else is left under the prefix (the kinds' `sweep`, as `flush_all`).
    pub(crate) fn finish(self, all: bool) -> Result<(), CliError> {
        match self {
            Store::Redis => {
                admin::drain();
                if all {
                    JsonBackend.sweep()?;
                }
            }
            Store::Postgres => {
                if all {
                    PostgresBackend.sweep()?;
                }
            }
        }
        Ok(())
    }

    /// The counts `stats` shows.
    pub(crate) fn stats(self, progress: &(dyn Fn(u64) + Sync)) -> Result<Value, CliError> {
        let config = Config::global();
        let (functions, store_keys, location) = match self {
            Store::Redis => {
                let scan = admin::scan(progress)?;
                let other = json!({
                    "keys": scan.keys,
                    "library keys": scan.library_keys,
                    "cleared keys": scan.stale_keys,
                });
                let location = match config.redis_cluster_urls() {
                    [] => format!("Redis at {}", config.redis_url()),
                    urls => format!("Redis Cluster at {} ({} seed nodes)", urls[0], urls.len()),
                };
                (redis_listing(scan).0, other, location)
            }
            Store::Postgres => {
                let counts = pg::counts()?;
                let functions = self.functions(progress)?;
                let other = json!({
                    "rows": counts.rows,
                    "generations": counts.generations,
                    "tag versions": counts.tag_versions,
                });
                let location =
                    format!("PostgreSQL at {} (schema {})", config.postgres_url(), config.postgres_schema());
                (functions, other, location)
            }
        };
        let mut backends: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for f in &functions {
            let b = backends.entry(f.backend.as_str()).or_default();
            *b = (b.0 + 1, b.1 + f.entries, b.2 + f.bytes);
        }
        let backends: serde_json::Map<String, Value> = backends
            .into_iter()
            .map(|(name, (n, entries, bytes))| {
                (name.to_owned(), json!({ "functions": n, "entries": entries, "bytes": bytes }))
            })
            .collect();
        Ok(json!({
            "store": match self { Store::Redis => "redis", Store::Postgres => "postgres" },
            "location": location,
            "prefix": config.key_prefix(),
            "functions": functions.len(),
            "entries": functions.iter().map(|f| f.entries).sum::<u64>(),
            "bytes": functions.iter().map(|f| f.bytes).sum::<u64>(),
            "backends": backends,
            "store_keys": store_keys,
        }))
    }
}

/// The functions and keys of a Redis scan.
fn redis_listing(scan: admin::Scan) -> (Vec<Function>, Vec<Key>) {
    let paths: BTreeMap<&str, &str> =
        scan.functions.iter().map(|f| (f.namespace.as_str(), f.path.as_str())).collect();
    let keys = scan
        .entries
        .iter()
        .map(|e| Key {
            key: e.key.clone(),
            namespace: e.namespace.clone(),
            path: paths.get(e.namespace.as_str()).map_or_else(String::new, |p| (*p).to_owned()),
            arguments: e.arguments.clone(),
            decoded: decode::arguments(&e.arguments),
            bytes: e.bytes,
        })
        .collect();
    let functions = scan
        .functions
        .into_iter()
        .map(|f| Function {
            path: f.path.clone(),
            backend: f.backend.clone(),
            namespace: f.namespace.clone(),
            entries: f.entries,
            bytes: f.bytes,
            tags: f.tags.clone(),
            redis: Some(f),
        })
        .collect();
    (functions, keys)
}
