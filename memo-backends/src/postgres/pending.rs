//! Durable invalidation for PostgreSQL ([`crate::retries`]): a clear that could not
//! reach the database is returned as an error and retried in the background; until it
//! goes through, this process serves no value of that function (or, for a tag
//! invalidation, of a function that may carry the tags) from PostgreSQL.
//!
//! With a `local` tier, a clear goes to the table and then to the bus (the other
//! processes' tiers), both in the same attempt: a failure of either retries both.

use memo_core::CachedFunction;

use super::bus::Bus;
use super::conn::{Postgres, Session};
use crate::retries::{Retries, Store};
pub(crate) use crate::retries::{Target, What};

/// The scope of tag invalidations, which concern every function.
pub(crate) const TAGS: &str = "";

/// A clear's scope: a function's namespace (or [`TAGS`]) and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    ns: String,
    target: Target,
}

/// The pending clears, by scope.
static RETRIES: Retries<Scope> = Retries::new("memo-alchemy-pg-retry");

/// PostgreSQL, as the retry queue reaches it.
struct Retried;

impl Store<Scope> for Retried {
    /// The retries are the breaker's probes: they go through while it is open.
    fn apply(&self, scope: &Scope, what: &What) -> Result<usize, String> {
        Postgres::global().run_probe(|c| apply(c, &scope.ns, scope.target, what))
    }
    fn is_down(&self) -> bool {
        Postgres::global().is_down()
    }
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }
}

/// Whether a pending clear covers `function` (namespace `ns`): then nothing of it is
/// served from the table.
#[inline]
pub(crate) fn blocks(ns: &str, function: &CachedFunction) -> bool {
    RETRIES.blocks(|scope, what| match what {
        What::Tags(tags) => function.may_carry(tags),
        _ => scope.ns == ns,
    })
}

/// How many clears of this process wait for PostgreSQL.
pub fn pending() -> usize {
    RETRIES.pending()
}

/// Applies a clear now; on failure, queues it for retries and says so in the error.
pub(crate) fn invalidate(ns: &str, target: Target, what: What) -> Result<usize, String> {
    let scope = Scope { ns: ns.to_owned(), target };
    RETRIES.run(&Retried, &scope, what.clone(), || Postgres::global().run(|c| apply(c, ns, target, &what)))
}

/// [`invalidate`] for `async` callers.
pub(crate) async fn invalidate_async(ns: &str, target: Target, what: What) -> Result<usize, String> {
    let scope = Scope { ns: ns.to_owned(), target };
    let applied = what.clone();
    RETRIES
        .run_async(&Retried, &scope, what, || {
            Postgres::global().run_async(|c| apply(c, ns, target, &applied))
        })
        .await
}

async fn apply(c: Session, ns: &str, target: Target, what: &What) -> Result<usize, tokio_postgres::Error> {
    let removed = match target.reaches_store() {
        true => apply_store(&c, ns, what).await?,
        false => 0,
    };
    if target != Target::Store {
        // Once the table has changed: told before, another process could read the
        // old value again and keep it.
        let bus = Bus::global();
        let message = bus.message(ns, what);
        c.query_one(&c.prepare_cached(&Postgres::global().sql.notify).await?, &[&bus.channel(), &message])
            .await?;
    }
    Ok(removed)
}

async fn apply_store(c: &Session, ns: &str, what: &What) -> Result<usize, tokio_postgres::Error> {
    let sql = &Postgres::global().sql;
    let row = match what {
        What::Tags(tags) => {
            let tags = super::storable(tags.clone());
            c.query_one(&c.prepare_cached(&sql.invalidate_tags).await?, &[&tags]).await?
        }
        What::All => {
            c.query_one(&c.prepare_cached(&sql.clear).await?, &[&ns, &None::<Vec<String>>, &None::<String>])
                .await?
        }
        What::Matching(wanted) => {
            c.query_one(&c.prepare_cached(&sql.clear).await?, &[&ns, wanted, &None::<String>]).await?
        }
        What::Key(key) => {
            c.query_one(&c.prepare_cached(&sql.clear).await?, &[&ns, &None::<Vec<String>>, key]).await?
        }
    };
    Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}
