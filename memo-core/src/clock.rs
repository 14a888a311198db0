//! Milliseconds since the first use of the cache, from the monotonic clock: precise
//! ([`now_ms`], ~30-40 ns a read) and coarse ([`coarse_now_ms`], one load, up to a
//! tick behind).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, Once};
use std::thread;
use std::time::{Duration, Instant};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since this process first used the clock. Never goes backwards.
pub fn now_ms() -> u64 {
    let elapsed = EPOCH.elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// [`now_ms`] as the ticker thread last stored it; `NOT_TICKING` before it runs.
static COARSE: AtomicU64 = AtomicU64::new(NOT_TICKING);
const NOT_TICKING: u64 = u64::MAX;
/// How often the ticker stores the time. Readers that need the millisecond compare
/// against the precise clock once the coarse one is within a margin of their
/// deadline (see the memory backend), so the tick only has to stay well inside that
/// margin: 200 wake-ups a second rather than 1,000.
const TICK: Duration = Duration::from_millis(5);

/// [`now_ms`] as of the last tick of a background thread that stores it every 5 ms:
/// one load of a line that changes 200 times a second, instead of a clock read. Never
/// ahead of [`now_ms`]; behind it by up to 5 ms, more while the ticker waits for a
/// core. Callers that need the millisecond read [`now_ms`] when the coarse time is
/// close to their deadline.
///
/// The first call starts the ticker (a thread named `memo-alchemy-clock`), so a
/// program that never caches with an `expire` never starts it. If the thread cannot
/// be started, every call reads the precise clock.
#[inline]
pub fn coarse_now_ms() -> u64 {
    match COARSE.load(Relaxed) {
        NOT_TICKING => start_ticker(),
        now => now,
    }
}

#[cold]
fn start_ticker() -> u64 {
    static START: Once = Once::new();
    START.call_once(|| {
        COARSE.store(now_ms(), Relaxed);
        let ticker = thread::Builder::new().name("memo-alchemy-clock".into()).spawn(|| loop {
            thread::sleep(TICK);
            COARSE.store(now_ms(), Relaxed);
        });
        if let Err(err) = ticker {
            COARSE.store(NOT_TICKING, Relaxed);
            tracing::warn!(%err, "memo-alchemy: no clock thread; expiry reads the precise clock");
        }
    });
    now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_follows_the_precise_one_and_is_never_ahead() {
        let first = coarse_now_ms();
        assert!(first <= now_ms());
        thread::sleep(Duration::from_millis(30));
        let later = coarse_now_ms();
        assert!(later <= now_ms());
        assert!(later > first, "the ticker advanced: {first} -> {later}");
    }
}
