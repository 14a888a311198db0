//! The invalidation bus of `distributed_memory`: one subscriber thread per process
//! on one Redis channel, and the publishing side of clears.
//!
//! A message names a function's namespace and what to remove: `F|origin|ns` for
//! everything, `P|origin|segments|ns` for the entries with those `name=hex` segments.
//!
//! The subscriber publishes its health as an epoch: 0 while it is not subscribed, and
//! a new number after each successful (re)subscription. A store serves local values
//! only while the epoch is the one its values were filled under: a value can never
//! outlive a subscription gap, during which clears elsewhere may have been missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use memo_core::Config;
use parking_lot::{Mutex, RwLock};

use super::conn::Redis;

/// What a process does with an invalidation for one of its functions.
pub(crate) trait Listener: Send + Sync {
    /// Removes every local entry.
    fn invalidate_all(&self);
    /// Removes the local entries that have every `name=hex` segment.
    fn invalidate_matching(&self, segments: &[&str]);
}

/// The process's bus.
pub(crate) struct Bus {
    channel: String,
    origin: String,
    epoch: AtomicU64,
    next_epoch: AtomicU64,
    stop: AtomicBool,
    listeners: RwLock<HashMap<String, Vec<Arc<dyn Listener>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    url: String,
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

/// How long the subscriber blocks on a read before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

impl Bus {
    /// The bus, with its subscriber thread started on first use.
    pub(crate) fn global() -> &'static Bus {
        let mut started = false;
        let bus = BUS.get_or_init(|| {
            started = true;
            let config = Config::global();
            Bus {
                channel: format!("{}:__memo:invalidate", config.key_prefix()),
                origin: format!(
                    "{}-{:x}",
                    std::process::id(),
                    super::namespace::fnv1a(&now_nanos().to_le_bytes())
                ),
                epoch: AtomicU64::new(0),
                next_epoch: AtomicU64::new(1),
                stop: AtomicBool::new(false),
                listeners: RwLock::new(HashMap::new()),
                thread: Mutex::new(None),
                url: config.redis_url().expose().to_owned(),
            }
        });
        if started {
            let handle = thread::Builder::new()
                .name("memo-alchemy-invalidation".into())
                .spawn(move || bus.run())
                .expect("the OS can start memo-alchemy's subscriber thread");
            *bus.thread.lock() = Some(handle);
        }
        bus
    }

    /// The current epoch: 0 while unsubscribed.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Delivers invalidations of namespace `ns` to `listener`.
    pub(crate) fn listen(&self, ns: &str, listener: Arc<dyn Listener>) {
        self.listeners.write().entry(ns.to_owned()).or_default().push(listener);
    }

    /// Tells every process to drop `ns`'s entries (all, or those with `segments`).
    pub(crate) fn message(&self, ns: &str, segments: Option<&[String]>) -> String {
        match segments {
            None => format!("F|{}|{ns}", self.origin),
            Some(segments) => format!("P|{}|{}|{ns}", self.origin, segments.join(":")),
        }
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
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
            match self.subscribe_and_listen() {
                Ok(()) => return,
                Err(err) => {
                    self.epoch.store(0, SeqCst);
                    tracing::warn!(error = %err, "memo-alchemy: invalidation subscription lost; local values are not served until it is back");
                }
            }
            thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Subscribes, raises the epoch, then handles messages until an error or the stop
    /// flag.
    fn subscribe_and_listen(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
        conn.set_read_timeout(Some(POLL))?;
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(&self.channel)?;
        // Subscribed: every clear from now on reaches us. Values filled before are
        // from another epoch and will not be served.
        self.epoch.store(self.next_epoch.fetch_add(1, SeqCst), SeqCst);
        loop {
            if self.stop.load(SeqCst) {
                self.epoch.store(0, SeqCst);
                return Ok(());
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    let payload: String = msg.get_payload()?;
                    self.deliver(&payload);
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn deliver(&self, payload: &str) {
        let mut parts = payload.splitn(4, '|');
        let (Some(kind), Some(origin)) = (parts.next(), parts.next()) else { return };
        if origin == self.origin {
            return; // Our own clear, already applied locally.
        }
        let (segments, ns) = match kind {
            "F" => (None, parts.next()),
            "P" => (parts.next(), parts.next()),
            _ => return,
        };
        let Some(ns) = ns else { return };
        let listeners = self.listeners.read();
        for listener in listeners.get(ns).into_iter().flatten() {
            match segments {
                None => listener.invalidate_all(),
                Some(s) => listener.invalidate_matching(&s.split(':').collect::<Vec<_>>()),
            }
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Publishes an invalidation through `redis` (blocking).
pub(crate) fn publish(redis: &Redis, bus: &Bus, ns: &str, segments: Option<&[String]>) -> Result<(), String> {
    let message = bus.message(ns, segments);
    redis.run(|io| super::conn::block(super::ops::publish(io, bus.channel(), &message)))
}

/// Stops this process's invalidation subscriber, if one runs: call it before exit for
/// a clean shutdown. `distributed_memory` functions compute directly afterwards.
pub fn shutdown() {
    if let Some(bus) = BUS.get() {
        bus.shutdown();
    }
}
