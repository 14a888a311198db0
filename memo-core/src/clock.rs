//! Milliseconds since the first use of the cache, from the monotonic clock.

use std::sync::LazyLock;
use std::time::Instant;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since this process first used the clock. Never goes backwards.
pub fn now_ms() -> u64 {
    let elapsed = EPOCH.elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}
