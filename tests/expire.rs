//! `expire` with millisecond precision.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memo_alchemy::cache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(expire = 1)]
fn stamp(a: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    a
}

#[test]
fn entry_lives_for_expire_seconds() {
    let start = Instant::now();
    stamp(1);
    sleep(Duration::from_millis(700));
    stamp(1);
    assert!(start.elapsed() < Duration::from_millis(1000), "the machine stalled; the check is void");
    assert_eq!(RUNS.load(SeqCst), 1, "alive at 700 ms");
    sleep(
        Duration::from_millis(1000) - start.elapsed().min(Duration::from_millis(1000))
            + Duration::from_millis(50),
    );
    stamp(1);
    assert_eq!(RUNS.load(SeqCst), 2, "expired just after 1000 ms");
    let stats = stamp::cache_stats();
    assert_eq!((stats.expirations, stats.len), (1, Some(1)));
}

#[cache(limit = -1, expire = 1)]
fn short_lived(k: u64) -> u64 {
    k
}

/// Regression: with no limit, expired entries that nobody read again were never
/// reclaimed (4,000,000 entries held for 1,000,000 live). Now an insert that would grow
/// a full table reclaims the expired entries first, and counts them as expirations.
#[test]
fn expired_entries_are_reclaimed_without_evictions() {
    for wave in 0..3_u64 {
        for k in 0..20_000 {
            short_lived(wave * 1_000_000 + k);
        }
        if wave < 2 {
            std::thread::sleep(std::time::Duration::from_millis(1_100));
        }
    }
    let stats = short_lived::cache_stats();
    assert_eq!(stats.len, Some(20_000), "only the last wave is live");
    assert!(stats.expirations >= 20_000, "at least one expired wave was reclaimed: {stats:?}");
    assert_eq!(stats.evictions, 0);
}

#[cache(limit = 10, expire = 1)]
fn brief(k: u64) -> u64 {
    k
}

/// Regression: a memory `cache_clear()` counted entries that had already expired.
#[test]
fn cache_clear_counts_only_live_entries() {
    brief(1);
    brief(2);
    brief(3);
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    brief(4);
    assert_eq!(brief::cache_stats().len, Some(1), "len counts live entries only");
    assert_eq!(brief::cache_clear().unwrap(), 1, "the three expired entries are not counted");
}

static JITTERED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(expire = 2, expire_jitter = 50)]
fn jittered(a: u32) -> u32 {
    JITTERED_RUNS.fetch_add(1, SeqCst);
    a
}

/// `expire_jitter = 50`: entries stored together live 1 to 3 s, not all exactly 2 s, so
/// that they do not all expire (and recompute) at once.
#[test]
fn jitter_spreads_the_expiry_of_entries_stored_together() {
    let start = Instant::now();
    for a in 0..200 {
        jittered(a);
    }
    assert_eq!(jittered::cache_stats().len, Some(200));
    sleep(Duration::from_millis(1600).saturating_sub(start.elapsed()));
    let at_1_6_s = jittered::cache_stats().len.unwrap();
    assert!(start.elapsed() < Duration::from_millis(1950), "the machine stalled; the check is void");
    // Without jitter all 200 would be alive until 2 s; with it, about 30% are gone.
    assert!((20..=180).contains(&at_1_6_s), "{at_1_6_s} of 200 alive at 1.6 s");
    sleep(Duration::from_millis(3100).saturating_sub(start.elapsed()));
    assert_eq!(jittered::cache_stats().len, Some(0), "none outlives expire + 50%");
}
