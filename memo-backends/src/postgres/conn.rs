//! Connections to PostgreSQL, one timeout and one circuit breaker per process.
//!
//! - Blocking callers take a connection of their own pool ([`super::blocking`]) and
//!   drive its I/O on their own thread.
//! - `async` callers take a tokio-postgres client from a bounded deadpool pool, whose
//!   connections' I/O tasks run on the library's one-thread runtime, so that they
//!   outlive the callers' runtimes. The operation itself runs in the caller's task,
//!   each poll entering the library's runtime (for its timers and spawns), under a
//!   [`Deadline`].
//!
//! The store logic is written once, as `async` code over a [`Session`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use memo_core::{Config, Error, Health, PostgresUrl};
use tokio_postgres::Statement;

use super::sql::Sql;
use crate::breaker::Breaker;

/// A connection an operation runs on: a pooled async one (its I/O task on the
/// library's runtime) or a blocking caller's own (driven on the caller's thread).
/// Either way a [`tokio_postgres::Client`] with a cache of prepared statements.
pub(crate) enum Session {
    Pooled(Box<Object>),
    Own(Arc<super::blocking::Shared>),
}

impl Session {
    /// The prepared statement of `sql`, prepared once per connection.
    pub(crate) async fn prepare_cached(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        match self {
            Session::Pooled(object) => object.prepare_cached(sql).await,
            Session::Own(own) => own.prepare_cached(sql).await,
        }
    }
}

impl std::ops::Deref for Session {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        match self {
            Session::Pooled(object) => object,
            Session::Own(own) => &own.client,
        }
    }
}

/// The library's runtime: it runs the connections' I/O tasks and the timers.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("memo-alchemy-postgres")
        .enable_all()
        .build()
        .expect("the OS can start one thread for memo-alchemy's PostgreSQL runtime")
});

/// The process's PostgreSQL client.
pub(crate) struct Postgres {
    pool: Result<Pool, String>,
    /// The connections of blocking callers.
    blocking: Result<super::blocking::Pool, String>,
    url: PostgresUrl,
    /// The connection settings, for connections of their own (the bus's).
    parsed: Result<tokio_postgres::Config, String>,
    timeout: Duration,
    pub(crate) sql: Sql,
    /// Whether this process has made sure the tables exist.
    ready: AtomicBool,
    breaker: Breaker,
    health: Health,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres({})", self.url)
    }
}

impl Postgres {
    /// The client for the configured database, made on first use.
    pub(crate) fn global() -> &'static Postgres {
        static POSTGRES: OnceLock<Postgres> = OnceLock::new();
        POSTGRES.get_or_init(|| Postgres::new(Config::global()))
    }

    fn new(config: &Config) -> Postgres {
        let url = config.postgres_url().clone();
        let timeout = config.postgres_timeout();
        let parsed = url.expose().parse::<tokio_postgres::Config>().map(|mut pg| {
            // Work a call gave up on must not run on in the server for ever (nor pile up
            // behind a lock), but a big clear may outlast the call's timeout: it then
            // returns `Err`, commits a little later, and its retry finds little to do.
            // Read committed is what the functions' locking is written for, whatever the
            // database's default.
            let server_ms = (timeout * 20).max(Duration::from_secs(10)).as_millis();
            pg.connect_timeout(timeout).application_name("memo-alchemy").options(format!(
                "-c statement_timeout={server_ms} -c lock_timeout={server_ms} \
                 -c default_transaction_isolation=read\\ committed"
            ));
            pg
        });
        let parsed = parsed.map_err(|e| url.redact(&e.to_string()));
        let own = parsed.clone();
        let blocking = parsed.clone().map(|pg| super::blocking::Pool::new(pg, config.postgres_pool_size()));
        let pool = parsed.and_then(|pg| {
            let manager = Manager::from_config(
                pg,
                tokio_postgres::NoTls,
                ManagerConfig { recycling_method: RecyclingMethod::Fast },
            );
            Pool::builder(manager)
                .max_size(config.postgres_pool_size())
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(timeout))
                .create_timeout(Some(timeout))
                .build()
                .map_err(|e| e.to_string())
        });
        Postgres {
            pool,
            blocking,
            parsed: own,
            health: Health::new(format!("PostgreSQL at {url}")),
            url,
            timeout,
            sql: Sql::new(config.postgres_schema()),
            ready: AtomicBool::new(false),
            breaker: Breaker::new(config),
        }
    }

    /// Waits `pause` without blocking the caller's executor (which need not be tokio):
    /// the timer is made and runs on the library's runtime (making it needs a tokio
    /// context, which the caller may not have).
    pub(crate) async fn pause(&self, pause: Duration) {
        drop(RUNTIME.spawn(async move { tokio::time::sleep(pause).await }).await);
    }

    /// The settings of a connection of its own, or why the URL is invalid.
    pub(crate) fn settings(&self) -> Result<&tokio_postgres::Config, &str> {
        self.parsed.as_ref().map_err(String::as_str)
    }

    /// The configured timeout of one operation.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where the server is, with no password.
    pub(crate) fn url(&self) -> &PostgresUrl {
        &self.url
    }

    /// Whether the last call found PostgreSQL unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.health.is_down()
    }

    /// Runs `op` with a connection of blocking callers, driven on this thread, within
    /// the timeout. Inside an async runtime (which a blocking call may not block on),
    /// it runs on a pooled async connection instead, this thread parking meanwhile.
    pub(crate) fn run<T, F>(&'static self, op: impl FnOnce(Session) -> F) -> Result<T, String>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        self.breaker.admit()?;
        let result = self.run_blocking(op);
        self.settle(result)
    }

    fn run_blocking<T, F>(&'static self, op: impl FnOnce(Session) -> F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            // The `Deadline` bounds it; the park's own deadline is a backstop.
            let parked = crate::park::park_until(
                Deadline::new(self.timeout, self.exec(op)),
                Instant::now() + 2 * self.timeout,
            );
            return parked
                .unwrap_or_else(|| Err(Failure::transport("no answer from PostgreSQL in time".into())));
        }
        let pool =
            self.blocking.as_ref().map_err(|e| Failure::transport(format!("invalid PostgreSQL URL: {e}")))?;
        pool.run(self.timeout, |session| async move {
            self.prepare(&session).await?;
            op(session).await.map_err(|e| self.failed(e))
        })
    }

    /// The state of PostgreSQL for [`memo_core::health`]: a `SELECT 1` now (bypassing the
    /// breaker, as its probe), the breaker and the blocking callers' pool.
    pub(crate) fn probe(&'static self) -> memo_core::StoreHealth {
        let started = Instant::now();
        let answered =
            self.run_probe(|session| async move { session.simple_query("SELECT 1").await.map(drop) });
        memo_core::StoreHealth {
            backend: "postgres",
            store: self.health.store().to_owned(),
            reachable: answered.is_ok(),
            latency: answered.is_ok().then(|| started.elapsed()),
            error: answered.err(),
            breaker: self.breaker.state(),
            pool: self.blocking.as_ref().ok().map(super::blocking::Pool::usage),
            subscribed: super::bus::subscribed(),
        }
    }

    /// [`run`](Postgres::run), even while the breaker is open: for the background
    /// retries of clears and the cleanup, which probe the database.
    pub(crate) fn run_probe<T, F>(&'static self, op: impl FnOnce(Session) -> F) -> Result<T, String>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let result = self.run_blocking(op);
        self.settle(result)
    }

    /// Runs `op` with a pooled client, for `async` callers, within the timeout.
    pub(crate) async fn run_async<T, F>(
        &'static self,
        op: impl FnOnce(Session) -> F + Send,
    ) -> Result<T, String>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send,
    {
        self.breaker.admit()?;
        let result = Deadline::new(self.timeout, self.exec(op)).await;
        self.settle(result)
    }

    async fn exec<T, F>(&'static self, op: impl FnOnce(Session) -> F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let pool =
            self.pool.as_ref().map_err(|e| Failure::transport(format!("invalid PostgreSQL URL: {e}")))?;
        let session = Session::Pooled(Box::new(pool.get().await.map_err(Failure::from)?));
        self.prepare(&session).await?;
        op(session).await.map_err(|e| self.failed(e))
    }

    /// Makes sure, once per process, that the tables exist.
    async fn prepare(&self, session: &Session) -> Result<(), Failure> {
        if !self.ready.load(Ordering::Acquire) {
            // One simple query: one implicit transaction, holding the setup lock.
            session.batch_execute(&self.sql.setup).await.map_err(Failure::from)?;
            self.ready.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The failure of an operation. When the schema, a table or a function went
    /// missing (dropped by hand, a restored database), the next call creates them again.
    fn failed(&self, e: tokio_postgres::Error) -> Failure {
        let code = e.code().map(tokio_postgres::error::SqlState::code);
        if matches!(code, Some("3F000" | "42P01" | "42883")) {
            self.ready.store(false, Ordering::Release);
        }
        Failure::from(e)
    }

    /// Accounts for a call's outcome. Only a transport failure (no connection, no
    /// answer) counts against the breaker and the store's health: an error the server
    /// sent back (a constraint, a deadlock) means it is up.
    fn settle<T>(&self, result: Result<T, Failure>) -> Result<T, String> {
        match result {
            Ok(value) => {
                self.breaker.success();
                self.health.succeeded();
                Ok(value)
            }
            Err(Failure { message, transport: false }) => {
                self.breaker.success();
                self.health.succeeded();
                Err(self.url.redact(&message))
            }
            Err(Failure { message, transport: true }) => {
                self.breaker.failure();
                let message = self.url.redact(&message);
                self.health.failed(&message);
                Err(message)
            }
        }
    }

    /// The error a caller gets for a failed operation.
    pub(crate) fn error(&self, function: &str, message: String) -> Error {
        Error::Backend {
            backend: "postgres",
            function: function.to_owned(),
            message: format!("{} ({})", self.url.redact(&message), self.url),
        }
    }
}

/// Why a call failed, and whether PostgreSQL could not be reached (as opposed to
/// answering with an error).
pub(crate) struct Failure {
    message: String,
    transport: bool,
}

impl Failure {
    pub(crate) fn transport(message: String) -> Failure {
        Failure { message, transport: true }
    }

    /// Whether the server could not be reached (as opposed to answering an error).
    pub(crate) fn is_transport(&self) -> bool {
        self.transport
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        // Class 08 (connection exception) and 57 (operator intervention: shutting
        // down, cannot connect now) mean the server is going or gone.
        let transport = e.as_db_error().is_none_or(|db| {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57")
        });
        // `Display` says only "db error"; the server's message is in the source.
        let message = match e.as_db_error() {
            Some(db) => format!("{e}: {db}"),
            None => e.to_string(),
        };
        Failure { message, transport }
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Failure {
        match e {
            PoolError::Backend(e) => Failure::from(e),
            other => Failure::transport(other.to_string()),
        }
    }
}

/// A future that runs inside the library's runtime and fails after `timeout`.
struct Deadline<F> {
    inner: Pin<Box<F>>,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F> Deadline<F> {
    fn new(timeout: Duration, inner: F) -> Deadline<F> {
        Deadline { inner: Box::pin(inner), timeout, sleep: None }
    }
}

impl<T, F: Future<Output = Result<T, Failure>>> Future for Deadline<F> {
    type Output = Result<T, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let _runtime = RUNTIME.enter();
        let timeout = self.timeout;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Failure::transport(format!(
                "no answer from PostgreSQL within {timeout:?}"
            ))));
        }
        self.inner.as_mut().poll(cx)
    }
}
