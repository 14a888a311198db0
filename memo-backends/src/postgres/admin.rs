//! Operators' entry points, for the `memo-alchemy` CLI: what the postgres functions
//! keep under the configured key prefix, found from the rows alone (no program's code
//! is needed), and clears that go through the library's own `memo_clear` (the
//! function's generation moves on under its advisory lock, so no fill that began before
//! stores).
//!
//! Every function here uses the installed [`Config`] (`Config::global`): its key
//! prefix, database URL and schema. Only live rows (not past `expires_at`) are counted
//! and listed.

use memo_core::{Config, Error};

use super::conn::Postgres as Db;
use super::pending::{invalidate, Target, What};

/// A function found in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredFunction {
    /// Its namespace: `{prefix}:{function prefix or _}:postgres:{path}:{fingerprint}`.
    pub namespace: String,
    /// Its live rows.
    pub entries: u64,
    /// The bytes of their values (`pg_column_size`).
    pub bytes: u64,
}

/// A live row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its function's namespace.
    pub namespace: String,
    /// Its encoded arguments: hex, or `name=hex:name=hex` for strict keys.
    pub key: String,
    /// The bytes of its value.
    pub bytes: u64,
    /// Its rendered tags.
    pub tags: Vec<String>,
}

/// One row, read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    /// The row as listed.
    pub entry: StoredEntry,
    /// The ms left before it expires, `None` for no expiry.
    pub ttl_ms: Option<u64>,
    /// When it was written or last touched (ms since the Unix epoch).
    pub written_ms: Option<i64>,
    /// Its value.
    pub value: serde_json::Value,
}

/// The schema-qualified name of `table`.
fn table(table: &str) -> String {
    format!("\"{}\".{table}", Config::global().postgres_schema())
}

fn prefix() -> String {
    format!("{}:", Config::global().key_prefix())
}

const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";

/// The functions with live rows under the prefix, by namespace.
pub fn functions() -> Result<Vec<StoredFunction>, Error> {
    let db = Db::global();
    let sql = format!(
        "SELECT namespace, count(*)::int8, coalesce(sum(pg_column_size(value)), 0)::int8 FROM {} \
         WHERE starts_with(namespace, $1) AND {LIVE} GROUP BY namespace ORDER BY namespace",
        table("memo_entries")
    );
    let prefix = prefix();
    let rows =
        db.run(|c| async move { c.query(&sql, &[&prefix]).await }).map_err(|m| db.error("functions", m))?;
    Ok(rows
        .iter()
        .map(|r| StoredFunction {
            namespace: r.get(0),
            entries: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            bytes: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
        })
        .collect())
}

/// The live rows under the prefix, by namespace then key.
pub fn entries() -> Result<Vec<StoredEntry>, Error> {
    let db = Db::global();
    let sql = format!(
        "SELECT namespace, key, pg_column_size(value)::int8, tags FROM {} \
         WHERE starts_with(namespace, $1) AND {LIVE} ORDER BY namespace, key",
        table("memo_entries")
    );
    let prefix = prefix();
    let rows = db.run(|c| async move { c.query(&sql, &[&prefix]).await }).map_err(|m| db.error("keys", m))?;
    Ok(rows
        .iter()
        .map(|r| StoredEntry {
            namespace: r.get(0),
            key: r.get(1),
            bytes: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            tags: r.get(3),
        })
        .collect())
}

/// The live row of `namespace` and `key`, if there is one.
pub fn inspect(namespace: &str, key: &str) -> Result<Option<Inspected>, Error> {
    let db = Db::global();
    let sql = format!(
        "SELECT value, pg_column_size(value)::int8, tags, \
         (extract(epoch FROM expires_at - now()) * 1000)::int8, \
         (extract(epoch FROM written_at) * 1000)::int8 FROM {} \
         WHERE namespace = $1 AND key = $2 AND {LIVE}",
        table("memo_entries")
    );
    let (ns, k) = (namespace.to_owned(), key.to_owned());
    let row =
        db.run(|c| async move { c.query_opt(&sql, &[&ns, &k]).await }).map_err(|m| db.error("inspect", m))?;
    Ok(row.map(|r| Inspected {
        entry: StoredEntry {
            namespace: namespace.to_owned(),
            key: key.to_owned(),
            bytes: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
            tags: r.get(2),
        },
        value: r.get(0),
        ttl_ms: r.get::<_, Option<i64>>(3).and_then(|ms| u64::try_from(ms).ok()),
        written_ms: r.get(4),
    }))
}

/// Counts under the prefix: rows (live or not), functions with a generation row, and
/// every tag version of the database (tags are not prefixed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows under the prefix, expired ones included.
    pub rows: u64,
    /// Functions that ever stored or cleared under the prefix.
    pub generations: u64,
    /// Tags ever written or invalidated (the whole database's).
    pub tag_versions: u64,
}

/// See [`Counts`].
pub fn counts() -> Result<Counts, Error> {
    let db = Db::global();
    let sql = format!(
        "SELECT (SELECT count(*) FROM {e} WHERE starts_with(namespace, $1))::int8, \
         (SELECT count(*) FROM {g} WHERE starts_with(namespace, $1))::int8, \
         (SELECT count(*) FROM {t})::int8",
        e = table("memo_entries"),
        g = table("memo_generations"),
        t = table("memo_tag_versions"),
    );
    let prefix = prefix();
    let row =
        db.run(|c| async move { c.query_one(&sql, &[&prefix]).await }).map_err(|m| db.error("stats", m))?;
    let n = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(Counts { rows: n(0), generations: n(1), tag_versions: n(2) })
}

/// Clears everything of the function whose namespace is `namespace`, as its own clear
/// would (`memo_clear`), and tells the processes that keep its values in a `local`
/// tier; returns the live rows there were.
pub fn clear(namespace: &str) -> Result<usize, Error> {
    invalidate(namespace, Target::StoreAndBus, What::All).map_err(|m| Db::global().error("clear", m))
}
