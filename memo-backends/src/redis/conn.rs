//! Connections to Redis, for blocking and for `async` callers, behind one timeout and
//! one circuit breaker per process.
//!
//! - Blocking callers take a connection from a small pool; connecting and each
//!   command are bounded by the configured timeout. On a cluster they share the async
//!   cluster connection instead, each waiting on its own thread for its commands' answers
//!   until the call's deadline: one timeout per call, however the cluster client retries.
//! - `async` callers share one multiplexed connection, driven by a one-thread runtime
//!   of the library's own, so that it outlives the callers' runtimes. Each operation
//!   runs there under `tokio::time::timeout`.
//! - The server is one Redis (`redis_url`) or a Redis Cluster (`redis_cluster_urls`):
//!   the cluster clients route each command by its keys' hash slot and follow
//!   `MOVED`/`ASK` redirections, so the store logic is the same for both.
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
use redis::cluster::ClusterClient;
use redis::{Cmd, ConnectionLike, FromRedisValue, IntoConnectionInfo, RedisResult, ScriptInvocation};

/// Issues commands; implemented for a blocking connection and for the async manager.
pub(crate) trait Io: Send {
    fn query<T: FromRedisValue + Send>(&mut self, cmd: &Cmd) -> impl Future<Output = RedisResult<T>> + Send;
    fn invoke<T: FromRedisValue + Send>(
        &mut self,
        script: &ScriptInvocation<'_>,
    ) -> impl Future<Output = RedisResult<T>> + Send;
}

/// A blocking caller's connection, used through [`Io`]: a connection to the one server,
/// or the shared cluster connection with the call's deadline.
pub(crate) enum SyncIo<'c> {
    Single(&'c mut (dyn ConnectionLike + Send)),
    Cluster(AsyncIo, Instant),
}

impl Io for SyncIo<'_> {
    fn query<T: FromRedisValue + Send>(&mut self, cmd: &Cmd) -> impl Future<Output = RedisResult<T>> + Send {
        std::future::ready(match self {
            SyncIo::Single(conn) => cmd.query(*conn),
            SyncIo::Cluster(io, deadline) => wait_until(io.query(cmd), *deadline),
        })
    }
    fn invoke<T: FromRedisValue + Send>(
        &mut self,
        script: &ScriptInvocation<'_>,
    ) -> impl Future<Output = RedisResult<T>> + Send {
        std::future::ready(match self {
            SyncIo::Single(conn) => script.invoke(*conn),
            SyncIo::Cluster(io, deadline) => wait_until(io.invoke(script), *deadline),
        })
    }
}

/// Polls `future` on this thread until it is ready or `deadline` passes: for a future
/// that waits on the work of the library's runtime (the cluster connection's driver),
/// whose context it enters, so that it works inside or outside any caller's runtime.
fn wait_until<T>(future: impl Future<Output = RedisResult<T>>, deadline: Instant) -> RedisResult<T> {
    // The cluster client's futures set timers: they register with the library's runtime
    // (whose thread drives them), not with any runtime the caller may be in.
    let _context = RUNTIME.enter();
    crate::park::park_until(future, deadline).unwrap_or_else(|| {
        let timeout =
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer from the Redis Cluster in time");
        Err(timeout.into())
    })
}

/// The shared async connection: to one server (reconnecting by itself) or a cluster.
#[derive(Clone)]
pub(crate) enum AsyncIo {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Io for AsyncIo {
    async fn query<T: FromRedisValue + Send>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            AsyncIo::Single(manager) => cmd.query_async(manager).await,
            AsyncIo::Cluster(cluster) => cmd.query_async(cluster).await,
        }
    }
    async fn invoke<T: FromRedisValue + Send>(&mut self, script: &ScriptInvocation<'_>) -> RedisResult<T> {
        match self {
            AsyncIo::Single(manager) => script.invoke_async(manager).await,
            AsyncIo::Cluster(cluster) => script.invoke_async(cluster).await,
        }
    }
}

/// What the process connects to.
#[derive(Clone)]
pub(crate) enum Client {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
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
    client: Result<Client, String>,
    /// The server, or the first seed node of the cluster, as errors name it.
    url: RedisUrl,
    /// The seed nodes of the cluster; empty for one server.
    seeds: Vec<RedisUrl>,
    timeout: Duration,
    /// See [`connect_timeout`].
    connect_timeout: Duration,
    pool: Mutex<Vec<redis::Connection>>,
    /// The async connection; dropped after a failure, so that the next call (the
    /// breaker's probe, say) connects afresh instead of reusing a broken one.
    manager: Mutex<Option<AsyncIo>>,
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

/// How many timeouts a background retry of a clear may take.
const RETRY_BUDGET: u32 = 20;

impl Redis {
    /// The client for the configured URL, made on first use.
    pub(crate) fn global() -> &'static Redis {
        static REDIS: OnceLock<Redis> = OnceLock::new();
        REDIS.get_or_init(|| Redis::new(Config::global()))
    }

    fn new(config: &Config) -> Redis {
        let seeds = config.redis_cluster_urls().to_vec();
        let url = seeds.first().unwrap_or(config.redis_url()).clone();
        let (client, connect_timeout) = if seeds.is_empty() {
            match single_client(&url) {
                Ok(client) => {
                    let connect_timeout = connect_timeout(&client, config.redis_timeout());
                    (Ok(Client::Single(client)), connect_timeout)
                }
                Err(e) => (Err(url.redact(&e.to_string())), config.redis_timeout()),
            }
        } else {
            let client = cluster_client(&seeds, config.redis_timeout()).map(|c| Client::Cluster(Box::new(c)));
            (client.map_err(|e| url.redact(&e.to_string())), config.redis_timeout())
        };
        let health = match seeds.len() {
            0 => Health::new(format!("Redis at {url}")),
            n => Health::new(format!("Redis Cluster at {url} ({n} seed nodes)")),
        };
        Redis {
            client,
            connect_timeout,
            health,
            url,
            seeds,
            timeout: config.redis_timeout(),
            pool: Mutex::new(Vec::new()),
            manager: Mutex::new(None),
            breaker: Breaker::new(config),
        }
    }

    fn client(&self) -> Result<&Client, String> {
        self.client.as_ref().map_err(|e| format!("invalid Redis URL {}: {e}", self.url))
    }

    /// Whether the server is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        !self.seeds.is_empty()
    }

    /// The server, or the cluster's seed nodes: where the invalidation bus subscribes.
    pub(crate) fn nodes(&self) -> Vec<RedisUrl> {
        match self.seeds.is_empty() {
            true => vec![self.url.clone()],
            false => self.seeds.clone(),
        }
    }

    /// Whether the last call found Redis unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.health.is_down()
    }

    /// Runs `op` on a pooled blocking connection, within the timeout.
    pub(crate) fn run<T>(&self, op: impl FnOnce(&mut SyncIo<'_>) -> RedisResult<T>) -> Result<T, String> {
        self.breaker.admit()?;
        let result = self.run_blocking(op, self.timeout);
        self.settle(result)
    }

    /// [`run`](Redis::run), even while the breaker is open: for the background retries
    /// of clears, which are the breaker's probes. Their success closes it.
    pub(crate) fn run_probe<T>(
        &self,
        op: impl FnOnce(&mut SyncIo<'_>) -> RedisResult<T>,
    ) -> Result<T, String> {
        let result = self.run_blocking(op, self.timeout);
        self.settle(result)
    }

    /// [`run_probe`](Redis::run_probe) with [`RETRY_BUDGET`] timeouts: for the background
    /// retries of clears, which no caller waits for, and some of which (a tag over many
    /// functions on a cluster) take more round trips than fit in one timeout.
    pub(crate) fn run_retry<T>(
        &self,
        op: impl FnOnce(&mut SyncIo<'_>) -> RedisResult<T>,
    ) -> Result<T, String> {
        let result = self.run_blocking(op, self.timeout * RETRY_BUDGET);
        self.settle(result)
    }

    fn run_blocking<T>(
        &self,
        op: impl FnOnce(&mut SyncIo<'_>) -> RedisResult<T>,
        budget: Duration,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let client = match self.client().map_err(Failure::transport)? {
            Client::Single(client) => client,
            Client::Cluster(_) => {
                let deadline = started + budget;
                // Not in the match: its guard would live through the arms.
                let shared = self.manager.lock().clone();
                let io = match shared {
                    Some(io) => io,
                    None => {
                        let connecting = RUNTIME.spawn(self.connect_async()?);
                        let connected = wait_until(async { connecting.await.map_err(joined) }, deadline)?;
                        let io = connected?;
                        self.manager.lock().get_or_insert(io).clone()
                    }
                };
                return op(&mut SyncIo::Cluster(io, deadline)).map_err(Failure::from);
            }
        };
        let pooled = self.pool.lock().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => client.get_connection_with_timeout(self.connect_timeout)?,
        };
        let left = budget.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        conn.set_read_timeout(Some(left))?;
        conn.set_write_timeout(Some(left))?;
        let result = op(&mut SyncIo::Single(&mut conn)).map_err(Failure::from);
        // A connection that failed may hold half a reply: drop it.
        if result.is_ok() {
            let mut pool = self.pool.lock();
            if pool.len() < POOL_SIZE {
                pool.push(conn);
            }
        }
        result
    }

    /// Runs `op` on the server, or on each primary of the cluster in turn (with `true`,
    /// for "keys of one command must share a hash slot"); the sum of their answers.
    pub(crate) fn on_every_primary(
        &self,
        op: impl Fn(&mut SyncIo<'_>, bool) -> RedisResult<usize>,
    ) -> Result<usize, String> {
        if !self.is_cluster() {
            return self.run(|io| op(io, false));
        }
        let primaries = self.run(|io| {
            let nodes: String = block(io.query(redis::cmd("CLUSTER").arg("NODES")))?;
            Ok(primaries(&nodes))
        })??;
        let timeout = self.timeout;
        let seed = self.url.expose().into_connection_info().map_err(|e| self.url.redact(&e.to_string()))?;
        let mut total = 0;
        for (host, port) in primaries {
            let result = (|| {
                let info = seed.clone().set_addr(redis::ConnectionAddr::Tcp(host.clone(), port));
                let mut conn = redis::Client::open(info)?.get_connection_with_timeout(timeout)?;
                conn.set_read_timeout(Some(timeout))?;
                op(&mut SyncIo::Single(&mut conn), true)
            })()
            .map_err(Failure::from);
            total += self.settle(result)?;
        }
        Ok(total)
    }

    /// Waits `pause` without blocking the caller's executor (which need not be tokio):
    /// the timer runs on the library's runtime.
    pub(crate) async fn pause(&self, pause: Duration) {
        // The timer is made inside the task: outside a tokio runtime it could not be.
        drop(RUNTIME.spawn(async move { tokio::time::sleep(pause).await }).await);
    }

    /// Runs `op` with the shared async connection, on the library's runtime, within
    /// the timeout.
    pub(crate) async fn run_async<T, F>(
        &'static self,
        op: impl FnOnce(AsyncIo) -> F + Send + 'static,
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
    async fn manager(&self) -> Result<AsyncIo, Failure> {
        if let Some(manager) = self.manager.lock().clone() {
            return Ok(manager);
        }
        let manager = self.connect_async()?.await?;
        Ok(self.manager.lock().get_or_insert(manager).clone())
    }

    /// Connects the async connection (on the library's runtime, where its driver runs).
    fn connect_async(&self) -> Result<impl Future<Output = RedisResult<AsyncIo>> + Send + 'static, Failure> {
        let client = self.client().map_err(Failure::transport)?.clone();
        let timeout = self.timeout;
        Ok(async move {
            Ok(match client {
                Client::Single(client) => {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(1);
                    AsyncIo::Single(ConnectionManager::new_with_config(client, config).await?)
                }
                Client::Cluster(client) => AsyncIo::Cluster(client.get_async_connection().await?),
            })
        })
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

    /// The state of Redis for [`memo_core::health`]: a `PING` now (bypassing the
    /// breaker, as its probe), the breaker and the blocking pool.
    pub(crate) fn probe(&self, backend: &'static str) -> memo_core::StoreHealth {
        let started = Instant::now();
        let pinged = self.run_probe(|io| block(io.query::<String>(&redis::cmd("PING"))));
        memo_core::StoreHealth {
            backend,
            store: self.health.store().to_owned(),
            reachable: pinged.is_ok(),
            latency: pinged.is_ok().then(|| started.elapsed()),
            error: pinged.err(),
            breaker: self.breaker.state(),
            // Blocking callers pool connections to one server; a cluster has one shared
            // multiplexed connection.
            pool: (!self.is_cluster()).then(|| memo_core::PoolUse {
                idle: self.pool.lock().len(),
                in_use: None,
                max: POOL_SIZE,
            }),
            subscribed: None,
        }
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

/// A join error of a task on the library's runtime, as a Redis error.
fn joined(e: tokio::task::JoinError) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(format!("the Redis task failed: {e}")))
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

/// The `(host, port)` of each primary that `CLUSTER NODES` lists; an error naming a
/// primary that is failing while it still serves slots (its keys cannot be reached).
fn primaries(nodes: &str) -> Result<Vec<(String, u16)>, String> {
    let mut found = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else { continue };
        if !flags.split(',').any(|f| f == "master") {
            continue;
        }
        // ip:port@cport[,hostname]
        let Some((host, port)) = address.split('@').next().and_then(|a| a.rsplit_once(':')) else { continue };
        if flags.contains("fail") {
            if fields.len() > 8 {
                return Err(format!("the primary at {host}:{port} is failing: its keys cannot be reached"));
            }
            continue; // replaced by its replica: it serves nothing
        }
        if let Ok(port) = port.parse() {
            found.push((host.to_owned(), port));
        }
    }
    Ok(found)
}

/// A client of the one server at `url`.
fn single_client(url: &RedisUrl) -> RedisResult<redis::Client> {
    let info = url.expose().into_connection_info()?;
    // Two `CLIENT SETINFO` replies to wait for on every new connection: skipped.
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    redis::Client::open(info.set_redis_settings(settings))
}

/// A client of the cluster whose seed nodes are `seeds`. Each connection and command
/// is bounded by `timeout`; a redirection or a failover is retried a few times, a
/// little apart, within the caller's patience.
fn cluster_client(seeds: &[RedisUrl], timeout: Duration) -> RedisResult<ClusterClient> {
    ClusterClient::builder(seeds.iter().map(RedisUrl::expose))
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(3)
        .min_retry_wait(5)
        .max_retry_wait(50)
        .build()
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
