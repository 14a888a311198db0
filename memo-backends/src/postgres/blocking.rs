//! The connections of blocking callers. Each has its own current-thread runtime, on
//! which the caller drives the connection's I/O and its query together, on its own
//! thread: no hand-over to another thread and back, which costs a hit more than the
//! query itself (benches/postgres.rs). At most `size` are open at once; a caller that
//! finds none free waits, within the timeout.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{Client, Connection, NoTls, Socket, Statement};

use super::conn::{Failure, Session};

/// What a [`Session`] of a blocking connection shares: the client and its statements.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

impl Shared {
    pub(crate) async fn prepare_cached(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.lock().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.lock().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// One connection: its runtime (which owns the socket's registration), the
/// connection's I/O future, and the client.
struct Conn {
    runtime: tokio::runtime::Runtime,
    io: Pin<Box<Connection<Socket, NoTlsStream>>>,
    shared: Arc<Shared>,
}

/// The blocking connections.
pub(crate) struct Pool {
    config: tokio_postgres::Config,
    size: usize,
    /// The idle connections, and how many are open (idle or in use).
    state: Mutex<(Vec<Conn>, usize)>,
    freed: Condvar,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blocking::Pool(size {})", self.size)
    }
}

impl Pool {
    pub(crate) fn new(config: tokio_postgres::Config, size: usize) -> Pool {
        Pool { config, size, state: Mutex::new((Vec::new(), 0)), freed: Condvar::new() }
    }

    /// How the pool is used now.
    pub(crate) fn usage(&self) -> memo_core::PoolUse {
        let state = self.state.lock();
        let idle = state.0.len();
        memo_core::PoolUse { idle, in_use: Some(state.1.saturating_sub(idle)), max: self.size }
    }

    /// Runs `op` on a connection, within `timeout` (waiting for a free connection and
    /// connecting included). A connection whose operation failed to get an answer is
    /// closed; the others go back to the pool.
    pub(crate) fn run<T, F>(&self, timeout: Duration, op: impl FnOnce(Session) -> F) -> Result<T, Failure>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        let deadline = Instant::now() + timeout;
        let mut conn = match self.take(deadline)? {
            Some(conn) => conn,
            None => self.connect(deadline).inspect_err(|_| self.closed())?,
        };
        let session = Session::Own(Arc::clone(&conn.shared));
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let Conn { runtime, io, .. } = &mut conn;
        let result = runtime.block_on(async {
            let work = async {
                tokio::select! {
                    biased;
                    done = op(session) => done,
                    ended = io.as_mut() => Err(Failure::transport(match ended {
                        Ok(()) => "PostgreSQL closed the connection".to_owned(),
                        Err(e) => e.to_string(),
                    })),
                }
            };
            tokio::time::timeout(left, work).await.unwrap_or_else(|_| {
                Err(Failure::transport(format!("no answer from PostgreSQL within {timeout:?}")))
            })
        });
        match &result {
            Err(failure) if failure.is_transport() => self.closed(),
            _ => self.give_back(conn),
        }
        result
    }

    /// An idle connection, or `None` when a new one may be opened (counted as open);
    /// waits for one to be freed while `size` are open.
    fn take(&self, deadline: Instant) -> Result<Option<Conn>, Failure> {
        let mut state = self.state.lock();
        loop {
            if let Some(conn) = state.0.pop() {
                return Ok(Some(conn));
            }
            if state.1 < self.size {
                state.1 += 1;
                return Ok(None);
            }
            if self.freed.wait_until(&mut state, deadline).timed_out() {
                return Err(Failure::transport(format!("all {} connections stayed busy", self.size)));
            }
        }
    }

    fn give_back(&self, conn: Conn) {
        self.state.lock().0.push(conn);
        self.freed.notify_one();
    }

    /// A connection was closed (or never opened).
    fn closed(&self) {
        let mut state = self.state.lock();
        state.1 = state.1.saturating_sub(1);
        drop(state);
        self.freed.notify_one();
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::transport(format!("cannot start a runtime for a connection: {e}")))?;
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        // The timer is made inside the runtime, which it needs.
        let connected =
            runtime.block_on(async { tokio::time::timeout(left, self.config.connect(NoTls)).await });
        let (client, io) = match connected {
            Ok(connected) => connected.map_err(Failure::from)?,
            Err(_) => {
                return Err(Failure::transport(format!("could not connect to PostgreSQL within {left:?}")))
            }
        };
        let shared = Arc::new(Shared { client, statements: Mutex::new(HashMap::new()) });
        Ok(Conn { runtime, io: Box::pin(io), shared })
    }
}
