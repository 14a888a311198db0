//! The invalidation bus of the postgres backend's `local = N` tiers, on PostgreSQL's
//! `LISTEN`/`NOTIFY`: one listener per process, on a connection of its own driven by a
//! thread of its own, and the publishing side of clears.
//!
//! The messages are those of [`crate::tier::message`], as on the Redis bus (their
//! escaping keeps NUL out of a payload, which is text). A payload must stay under
//! 8000 bytes: a message longer than [`MAX_MESSAGE`] is sent as an `F` of its namespace
//! (or of every tier, for tags), which drops more than needed and is always safe.
//!
//! Messages are numbered per channel by `memo_notify` (the module `sql`), which takes
//! the channel's row in `memo_bus`, moves its number on and notifies in one statement;
//! the row's lock is held until the commit that queues the notification, so the
//! numbers reach a listener in order (had the numbers come from a sequence, two
//! publishers could commit out of order, which would cost a spurious drop, no more).
//! The listener reads the last number before `LISTEN`, and expects each number once,
//! in order: any other number (a message lost, the row reset by hand or by a restored
//! database) starts a new epoch, which drops every tier.
//!
//! The listener publishes its health as an epoch, as the Redis bus does: 0 while it is
//! not listening, a new number after each (re)connection and after each gap. A quiet
//! channel is checked by a heartbeat (`SELECT 1` after [`HEARTBEAT`] without a message):
//! a frozen server closes nothing, and its silence past the configured timeout counts
//! as a lost connection. Reconnection backs off from 10 ms to 500 ms.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Once, OnceLock};
use std::task::Poll;
use std::time::Duration;

use memo_core::{Config, Health};
use tokio_postgres::AsyncMessage;

use super::conn::Postgres;
use crate::retries::What;
use crate::tier::message::{frame, message, Listeners, Numbers};
use crate::tier::Listener;

/// The longest message sent as it is (bytes): a payload must be shorter than 8000,
/// and the number goes in front.
pub(crate) const MAX_MESSAGE: usize = 7900;

/// How long the channel may stay quiet before the listener asks the server.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);

/// The process's bus.
pub(crate) struct Bus {
    channel: String,
    origin: String,
    epoch: AtomicU64,
    next_epoch: AtomicU64,
    listeners: Listeners,
    /// The listener thread, started by the first tier (a process that only publishes,
    /// such as the CLI, listens to nothing).
    started: Once,
    health: Health,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("postgres::Bus")
            .field("channel", &self.channel)
            .field("epoch", &self.epoch.load(SeqCst))
            .finish_non_exhaustive()
    }
}

static BUS: OnceLock<Bus> = OnceLock::new();

impl crate::tier::Bus for Bus {
    fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    fn listen(&self, ns: &str, listener: Arc<dyn Listener>) {
        self.listeners.add(ns, listener);
        let bus = Bus::global();
        bus.started.call_once(|| {
            std::thread::Builder::new()
                .name("memo-alchemy-pg-invalidation".into())
                .spawn(move || bus.run())
                .expect("the OS can start memo-alchemy's listener thread");
        });
    }
}

/// Whether this process's listener is listening now; `None` when it never started.
pub(crate) fn subscribed() -> Option<bool> {
    BUS.get().filter(|bus| bus.started.is_completed()).map(|bus| bus.epoch.load(SeqCst) != 0)
}

/// The channel of the configured schema and key prefix: a short identifier (a channel
/// name is at most 63 bytes).
pub(crate) fn channel(config: &Config) -> String {
    let scope = format!("{}\0{}", config.postgres_schema(), config.key_prefix());
    format!("memo_bus_{:016x}", crate::keys::fnv1a(scope.as_bytes()))
}

impl Bus {
    /// The bus (its listener thread starts with the first tier that listens).
    pub(crate) fn global() -> &'static Bus {
        BUS.get_or_init(|| Bus {
            channel: channel(Config::global()),
            origin: format!(
                "{}-{:x}",
                std::process::id(),
                crate::keys::fnv1a(&crate::keys::wall_nanos().to_le_bytes())
            ),
            epoch: AtomicU64::new(0),
            next_epoch: AtomicU64::new(1),
            listeners: Listeners::default(),
            started: Once::new(),
            health: Health::new(format!("invalidation listener at {}", Postgres::global().url())),
        })
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// The message that tells the other processes to drop what `what` covers of `ns`
    /// (tags: of any namespace).
    pub(crate) fn message(&self, ns: &str, what: &What) -> String {
        let message = message(&self.origin, ns, what);
        if message.len() <= MAX_MESSAGE {
            return message;
        }
        // Too big for a payload: everything of the namespace (or every tier) goes.
        frame('F', &[self.origin.as_str(), ns])
    }

    /// Starts a new epoch: the values filled before are not served again.
    fn new_epoch(&self) {
        self.epoch.store(self.next_epoch.fetch_add(1, SeqCst), SeqCst);
    }

    fn run(&self) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                // Never listening: the tiers are skipped, the store still serves.
                self.health.failed(&format!("cannot start the listener's runtime: {e}"));
                return;
            }
        };
        let mut backoff = Duration::from_millis(10);
        loop {
            let result = runtime.block_on(self.listen_until_lost());
            self.epoch.store(0, SeqCst);
            // Logged once when lost, at most once a second after, once when back.
            self.health.failed(&result.err().unwrap_or_default());
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Connects, reads the last number, listens, raises the epoch, then handles the
    /// messages until the connection is lost (or the server stops answering).
    async fn listen_until_lost(&self) -> Result<(), String> {
        let db = Postgres::global();
        let timeout = db.timeout().max(Duration::from_millis(100));
        let settings = db.settings().map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
        let connect = settings.connect(tokio_postgres::NoTls);
        let (client, mut connection) = tokio::time::timeout(timeout.max(Duration::from_secs(1)), connect)
            .await
            .map_err(|_| format!("no connection to PostgreSQL within {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        // The connection's I/O, and its notifications handed over to this task.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<String, String>>();
        let driver = tokio::spawn(async move {
            let ended = std::future::poll_fn(|cx| loop {
                match connection.poll_message(cx) {
                    Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => {
                        drop(tx.send(Ok(n.payload().to_owned())));
                    }
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(e.to_string()),
                    Poll::Ready(None) => return Poll::Ready("the connection closed".to_owned()),
                    Poll::Pending => return Poll::Pending,
                }
            })
            .await;
            drop(tx.send(Err(ended)));
        });
        let listened = self.listen_on(&client, &mut rx, timeout).await;
        driver.abort();
        listened
    }

    async fn listen_on(
        &self,
        client: &tokio_postgres::Client,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
        timeout: Duration,
    ) -> Result<(), String> {
        let sql = &Postgres::global().sql;
        let answer =
            |what: &'static str| move |_| format!("no answer from PostgreSQL within {timeout:?} ({what})");
        let failed = |e: tokio_postgres::Error| match e.as_db_error() {
            Some(db) => format!("{e}: {db}"),
            None => e.to_string(),
        };
        // The tables (and `memo_bus`) may not exist yet.
        tokio::time::timeout(timeout * 20, client.batch_execute(&sql.setup))
            .await
            .map_err(answer("setup"))?
            .map_err(failed)?;
        // The number the next message should follow, read before listening: a message
        // sent in between shows as a gap (a drop of the tiers, while they are cold).
        let row = tokio::time::timeout(timeout, client.query_one(&sql.last_message, &[&self.channel]))
            .await
            .map_err(answer("the last message"))?
            .map_err(failed)?;
        let last: i64 = row.get(0);
        let mut numbers = Numbers::after(u64::try_from(last).unwrap_or(0));
        tokio::time::timeout(timeout, client.batch_execute(&format!("LISTEN {}", self.channel)))
            .await
            .map_err(answer("LISTEN"))?
            .map_err(failed)?;
        // Listening: every clear from now on reaches us. Values filled before are from
        // another epoch and will not be served.
        self.new_epoch();
        self.health.succeeded();
        loop {
            match tokio::time::timeout(HEARTBEAT, rx.recv()).await {
                Ok(Some(Ok(payload))) => {
                    let Some((message, next)) = numbers.read(&payload) else { continue };
                    if !next {
                        self.new_epoch();
                    }
                    self.listeners.deliver(&self.origin, message);
                }
                Ok(Some(Err(lost))) => return Err(lost),
                Ok(None) => return Err("the connection closed".to_owned()),
                Err(_quiet) => {
                    // A frozen server answers nothing and closes nothing: ask it.
                    tokio::time::timeout(timeout, client.simple_query("SELECT 1"))
                        .await
                        .map_err(answer("heartbeat"))?
                        .map_err(failed)?;
                }
            }
        }
    }
}
