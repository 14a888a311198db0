//! Connections to Redis, for blocking and for `async` callers, behind one timeout and
//! one circuit breaker per process.
//!
//! - Blocking callers take a `redis::Connection` from a small pool; connecting and each
//!   command are bounded by the configured timeout.
//! - `async` callers share a `ConnectionManager` (multiplexed, reconnecting), driven by
//!   a one-thread runtime of the library's own, so that it outlives the callers'
//!   runtimes. Each operation runs there under `tokio::time::timeout`.
//!
//! The store logic is written once, as `async` code over [`Io`]; blocking callers run
//! it with [`block`], which completes in one poll because blocking I/O is never pending.

use std::future::Future;
use std::pin::pin;
use std::sync::{LazyLock, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::breaker::Breaker;
use memo_core::{Config, Error, Health, RedisUrl};
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, IntoConnectionInfo, RedisResult, ScriptInvocation};

/// Issues commands; implemented for a blocking connection and for the async manager.
pub(crate) trait Io: Send {
    fn query<T: FromRedisValue + Send>(&mut self, cmd: &Cmd) -> impl Future<Output = RedisResult<T>> + Send;
    fn invoke<T: FromRedisValue + Send>(
        &mut self,
        script: &ScriptInvocation<'_>,
    ) -> impl Future<Output = RedisResult<T>> + Send;
}

/// A blocking connection, used through [`Io`].
pub(crate) struct SyncIo<'c>(&'c mut redis::Connection);

impl Io for SyncIo<'_> {
    fn query<T: FromRedisValue + Send>(&mut self, cmd: &Cmd) -> impl Future<Output = RedisResult<T>> + Send {
        std::future::ready(cmd.query(self.0))
    }
    fn invoke<T: FromRedisValue + Send>(
        &mut self,
        script: &ScriptInvocation<'_>,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        std::future::ready(script.invoke(self.0))
    }
}

impl Io for ConnectionManager {
    fn query<T: FromRedisValue + Send>(&mut self, cmd: &Cmd) -> impl Future<Output = RedisResult<T>> + Send {
        cmd.query_async(self)
    }
    fn invoke<T: FromRedisValue + Send>(
        &mut self,
        script: &ScriptInvocation<'_>,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        script.invoke_async(self)
    }
}

/// Runs store logic over a [`SyncIo`]: it never waits, so one poll finishes it.
pub(crate) fn block<T>(future: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => {
            Err(redis::RedisError::from((redis::ErrorKind::Client, "blocking Redis I/O returned Pending")))
        }
    }
}

/// The process's Redis client.
pub(crate) struct Redis {
    client: Result<redis::Client, String>,
    url: RedisUrl,
    timeout: Duration,
    /// See [`connect_timeout`].
    connect_timeout: Duration,
    pool: Mutex<Vec<redis::Connection>>,
    /// The async connection; dropped after a failure, so that the next call (the
    /// breaker's probe, say) connects afresh instead of reusing a broken one.
    manager: Mutex<Option<ConnectionManager>>,
    breaker: Breaker,
    health: Health,
}

/// The library's own runtime for the async connection.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("memo-alchemy-redis")
        .enable_all()
        .build()
        .expect("the OS can start one thread for memo-alchemy's Redis runtime")
});

const POOL_SIZE: usize = 16;

impl Redis {
    /// The client for the configured URL, made on first use.
    pub(crate) fn global() -> &'static Redis {
        static REDIS: OnceLock<Redis> = OnceLock::new();
        REDIS.get_or_init(|| Redis::new(Config::global()))
    }

    fn new(config: &Config) -> Redis {
        let url = config.redis_url().clone();
        let client = url.expose().into_connection_info().and_then(|info| {
            // Two `CLIENT SETINFO` replies to wait for on every new connection: skipped.
            let settings = info.redis_settings().clone().set_skip_set_lib_name();
            redis::Client::open(info.set_redis_settings(settings))
        });
        let (client, connect_timeout) = match client {
            Ok(client) => {
                let connect_timeout = connect_timeout(&client, config.redis_timeout());
                (Ok(client), connect_timeout)
            }
            Err(e) => (Err(url.redact(&e.to_string())), config.redis_timeout()),
        };
        Redis {
            client,
            connect_timeout,
            health: Health::new(format!("Redis at {url}")),
            url,
            timeout: config.redis_timeout(),
            pool: Mutex::new(Vec::new()),
            manager: Mutex::new(None),
            breaker: Breaker::new(config),
        }
    }

    fn client(&self) -> Result<&redis::Client, String> {
        self.client.as_ref().map_err(|e| format!("invalid Redis URL {}: {e}", self.url))
    }

    /// Whether the last call found Redis unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.health.is_down()
    }

    /// Runs `op` on a pooled blocking connection, within the timeout.
    pub(crate) fn run<T>(&self, op: impl FnOnce(&mut SyncIo<'_>) -> RedisResult<T>) -> Result<T, String> {
        self.breaker.admit()?;
        let result = self.run_blocking(op);
        self.settle(result)
    }

    /// [`run`](Redis::run), even while the breaker is open: for the background retries
    /// of clears, which are the breaker's probes. Their success closes it.
    pub(crate) fn run_probe<T>(
        &self,
        op: impl FnOnce(&mut SyncIo<'_>) -> RedisResult<T>,
    ) -> Result<T, String> {
        let result = self.run_blocking(op);
        self.settle(result)
    }

    fn run_blocking<T>(&self, op: impl FnOnce(&mut SyncIo<'_>) -> RedisResult<T>) -> Result<T, Failure> {
        let started = Instant::now();
        let pooled = self.pool.lock().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self
                .client()
                .map_err(Failure::transport)?
                .get_connection_with_timeout(self.connect_timeout)
                .map_err(Failure::from)?,
        };
        let left = self.timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        conn.set_read_timeout(Some(left)).map_err(Failure::from)?;
        conn.set_write_timeout(Some(left)).map_err(Failure::from)?;
        let result = op(&mut SyncIo(&mut conn)).map_err(Failure::from);
        // A connection that failed may hold half a reply: drop it.
        if result.is_ok() {
            let mut pool = self.pool.lock();
            if pool.len() < POOL_SIZE {
                pool.push(conn);
            }
        }
        result
    }

    /// Runs `op` with the shared async connection, on the library's runtime, within
    /// the timeout.
    pub(crate) async fn run_async<T, F>(
        &'static self,
        op: impl FnOnce(ConnectionManager) -> F + Send + 'static,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        F: Future<Output = RedisResult<T>> + Send + 'static,
    {
        self.breaker.admit()?;
        let task = async move {
            let manager = self.manager().await?;
            op(manager).await.map_err(Failure::from)
        };
        let timeout = self.timeout;
        let result = match RUNTIME.spawn(tokio::time::timeout(timeout, task)).await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(Failure::transport(format!("no answer from Redis within {timeout:?}"))),
            Err(join) => Err(Failure::transport(format!("the Redis task failed: {join}"))),
        };
        self.settle(result)
    }

    /// The shared async connection, connecting when there is none.
    async fn manager(&self) -> Result<ConnectionManager, Failure> {
        if let Some(manager) = self.manager.lock().clone() {
            return Ok(manager);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let client = self.client().map_err(Failure::transport)?.clone();
        let manager = ConnectionManager::new_with_config(client, config).await.map_err(Failure::from)?;
        Ok(self.manager.lock().get_or_insert(manager).clone())
    }

    /// Accounts for a call's outcome. Only a transport failure (no connection, no
    /// answer) counts against the breaker and the store's health: an error Redis sent
    /// back (a script error, a refused command) means it is up.
    fn settle<T>(&self, result: Result<T, Failure>) -> Result<T, String> {
        match result {
            Ok(value) => {
                self.up();
                Ok(value)
            }
            Err(Failure { message, transport: false }) => {
                self.up();
                Err(self.url.redact(&message))
            }
            Err(Failure { message, transport: true }) => {
                // Connections made before the failure may be broken too: the next call,
                // and the breaker's probe, connect afresh.
                self.pool.lock().clear();
                self.manager.lock().take();
                self.breaker.failure();
                let message = self.url.redact(&message);
                self.health.failed(&message);
                Err(message)
            }
        }
    }

    fn up(&self) {
        self.breaker.success();
        self.health.succeeded();
    }

    /// The error a caller gets for a failed Redis operation.
    pub(crate) fn error(&self, backend: &'static str, function: &str, message: String) -> Error {
        Error::Backend {
            backend,
            function: function.to_owned(),
            message: format!("{} ({})", self.url.redact(&message), self.url),
        }
    }
}

/// Why a call failed, and whether Redis could not be reached (as opposed to answering
/// with an error).
struct Failure {
    message: String,
    transport: bool,
}

impl Failure {
    fn transport(message: String) -> Failure {
        Failure { message, transport: true }
    }
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Failure {
        let transport =
            e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal();
        Failure { message: e.to_string(), transport }
    }
}

/// The timeout to give a blocking connect so that it ends within `timeout`: the
/// `redis` crate waits up to its connect timeout for each reply of the connection's
/// set-up (`AUTH`, `SELECT`), one after another, even after the first has timed out.
fn connect_timeout(client: &redis::Client, timeout: Duration) -> Duration {
    let settings = client.get_connection_info().redis_settings();
    let auth = settings.username().is_some() || settings.password().is_some();
    let replies = u32::from(auth) + u32::from(settings.db() != 0);
    timeout / replies.max(1)
}
