//! The invalidation bus of `distributed_memory` and of json and pickle's `local` tiers:
//! one subscriber thread per process on one Redis channel, and the publishing side of
//! clears. The messages are those of [`crate::tier::message`].
//!
//! A frozen server (`SIGSTOP`) closes no connection: the subscriber pings it when the
//! channel has been quiet for [`HEARTBEAT`], and counts a ping without an answer
//! within the configured timeout as a lost subscription.
//!
//! Messages are numbered by a counter in Redis, incremented by the same script that
//! publishes (`{n}#{message}`), so every subscriber expects each number once, in order.
//!
//! The subscriber publishes its health as an epoch: 0 while it is not subscribed, and
//! a new number after each successful (re)subscription, and after each gap in the
//! numbers (a message lost, or the counter reset by a failover or a flush). A store
//! serves local values only while the epoch is the one its values were filled under: a
//! value can never outlive a subscription gap or a lost message, either of which may
//! have carried a clear.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use memo_core::{Config, Health, RedisUrl};

use crate::retries::What;
use crate::tier::message::{message, Listeners, Numbers};
use crate::tier::Listener;
use parking_lot::Mutex;

/// The process's bus.
pub(crate) struct Bus {
    channel: String,
    /// The counter that numbers the messages.
    sequence: String,
    origin: String,
    epoch: AtomicU64,
    next_epoch: AtomicU64,
    stop: AtomicBool,
    listeners: Listeners,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Whether the subscriber has tried to subscribe at least once: before that, an
    /// unsubscribed bus is starting, not failing.
    tried: AtomicBool,
    /// The server, or the cluster's seed nodes: the subscriber uses the first that
    /// answers, and moves to the next when its node fails. (On a cluster, a plain
    /// `PUBLISH` on any node reaches the subscribers of every node.)
    nodes: Vec<RedisUrl>,
    /// The node the next subscription tries.
    next_node: AtomicUsize,
    timeout: Duration,
    health: Health,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("channel", &self.channel)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

static BUS: OnceLock<Bus> = OnceLock::new();

impl crate::tier::Bus for Bus {
    fn epoch(&self) -> u64 {
        Bus::epoch(self)
    }

    fn listen(&self, ns: &str, listener: Arc<dyn Listener>) {
        // The process has one bus.
        Bus::global().listen(ns, listener);
    }
}

/// Whether this process's subscriber is subscribed now; `None` when it never started.
pub(crate) fn subscribed() -> Option<bool> {
    let started = |bus: &&Bus| bus.tried.load(SeqCst) || bus.thread.lock().is_some();
    BUS.get().filter(started).map(|bus| bus.epoch() != 0)
}

/// How long the subscriber blocks on a read before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// How long the channel may stay quiet before the subscriber pings the server.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);

impl Bus {
    /// The bus; its subscriber thread starts with the first listener (a process that
    /// only publishes, as `flush_all` and clears of functions it never opened do,
    /// subscribes to nothing).
    pub(crate) fn global() -> &'static Bus {
        BUS.get_or_init(|| {
            let config = Config::global();
            Bus {
                channel: format!("{}:__memo:invalidate", config.key_prefix()),
                sequence: sequence_key(config),
                origin: format!(
                    "{}-{:x}",
                    std::process::id(),
                    super::namespace::fnv1a(&super::wall_nanos().to_le_bytes())
                ),
                epoch: AtomicU64::new(0),
                next_epoch: AtomicU64::new(1),
                stop: AtomicBool::new(false),
                listeners: Listeners::default(),
                thread: Mutex::new(None),
                tried: AtomicBool::new(false),
                nodes: super::conn::Redis::global().nodes(),
                next_node: AtomicUsize::new(0),
                timeout: config.redis_timeout(),
                health: Health::new(format!(
                    "invalidation subscription at {}",
                    super::conn::Redis::global().nodes()[0]
                )),
            }
        })
    }

    /// The current epoch: 0 while unsubscribed.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Delivers invalidations of namespace `ns` to `listener`; the first starts the
    /// subscriber thread.
    pub(crate) fn listen(&'static self, ns: &str, listener: Arc<dyn Listener>) {
        self.listeners.add(ns, listener);
        let mut thread = self.thread.lock();
        if thread.is_none() && !self.stop.load(SeqCst) {
            let handle = thread::Builder::new()
                .name("memo-alchemy-invalidation".into())
                .spawn(move || self.run())
                .expect("the OS can start memo-alchemy's subscriber thread");
            *thread = Some(handle);
        }
    }

    /// Whether the bus has been unsubscribed since its first attempt: an outage, as
    /// opposed to the moments before the first subscription.
    pub(crate) fn is_down(&self) -> bool {
        self.epoch() == 0 && self.tried.load(SeqCst)
    }

    /// The message that tells the other processes to drop what `what` covers of `ns`.
    pub(crate) fn message(&self, ns: &str, what: &What) -> String {
        message(&self.origin, ns, what)
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    pub(crate) fn sequence(&self) -> &str {
        &self.sequence
    }

    /// Starts a new epoch: the values filled before are not served again.
    fn new_epoch(&self) {
        self.epoch.store(self.next_epoch.fetch_add(1, SeqCst), SeqCst);
    }

    /// Stops the subscriber thread and waits for it; local values are no longer
    /// served afterwards (the epoch stays 0).
    pub(crate) fn shutdown(&self) {
        self.stop.store(true, SeqCst);
        if let Some(handle) = self.thread.lock().take() {
            // A panic in the subscriber has already been reported by the thread.
            drop(handle.join());
        }
    }

    fn run(&self) {
        let mut backoff = Duration::from_millis(10);
        while !self.stop.load(SeqCst) {
            let result = self.subscribe_and_listen();
            self.epoch.store(0, SeqCst);
            self.tried.store(true, SeqCst);
            match result {
                Ok(()) => return,
                // Logged once when lost, at most once a second after, once when back.
                Err(err) => {
                    let node = self.next_node.fetch_add(1, SeqCst) % self.nodes.len();
                    self.health.failed(&self.nodes[node].redact(&err.to_string()));
                }
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Subscribes, raises the epoch, then handles messages until an error or the stop
    /// flag.
    fn subscribe_and_listen(&self) -> redis::RedisResult<()> {
        let node = &self.nodes[self.next_node.load(SeqCst) % self.nodes.len()];
        // The number the next message should follow, read before subscribing: a message
        // published in between shows as a gap (a drop of values, while there are few).
        let mut numbers = Numbers::after(self.last_number()?);
        let client = redis::Client::open(node.expose())?;
        let mut conn = client.get_connection_with_timeout(self.timeout.max(Duration::from_secs(1)))?;
        conn.set_read_timeout(Some(self.timeout))?;
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&self.channel)?;
        pubsub.set_read_timeout(Some(POLL))?;
        // Subscribed: every clear from now on reaches us. Values filled before are
        // from another epoch and will not be served.
        self.new_epoch();
        self.health.succeeded();
        let mut quiet = Duration::ZERO;
        loop {
            if self.stop.load(SeqCst) {
                return Ok(());
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    quiet = Duration::ZERO;
                    let payload: String = msg.get_payload()?;
                    let Some((message, next)) = numbers.read(&payload) else { continue };
                    if !next {
                        self.new_epoch();
                    }
                    self.listeners.deliver(&self.origin, message);
                }
                Err(e) if e.is_timeout() => {
                    quiet += POLL;
                    if quiet >= HEARTBEAT {
                        // A frozen server answers nothing and closes nothing: ask it.
                        pubsub.set_read_timeout(Some(self.timeout))?;
                        let _pong: redis::Value = pubsub.ping()?;
                        pubsub.set_read_timeout(Some(POLL))?;
                        quiet = Duration::ZERO;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The number of the last message published, by the counter in Redis.
    fn last_number(&self) -> redis::RedisResult<u64> {
        let redis = super::conn::Redis::global();
        let read = redis.run(|io| {
            super::conn::block(async {
                let number: Option<u64> =
                    super::conn::Io::query(io, redis::cmd("GET").arg(&self.sequence)).await?;
                Ok(number.unwrap_or(0))
            })
        });
        read.map_err(|m| redis::RedisError::from((redis::ErrorKind::Io, "cannot read the bus's counter", m)))
    }
}

/// The counter that numbers the bus's messages.
pub(crate) fn sequence_key(config: &Config) -> String {
    format!("{}:__memo:sequence", config.key_prefix())
}

/// Stops this process's invalidation subscriber, if one runs: call it before exit for
/// a clean shutdown. `distributed_memory` functions compute directly afterwards.
pub fn shutdown() {
    if let Some(bus) = BUS.get() {
        bus.shutdown();
    }
}
