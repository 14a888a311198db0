//! `limit` and `expire`: one typed form from the attribute (or the configuration) to
//! the store, and the one rule that turns a whole number into it.

use std::num::NonZeroUsize;
use std::time::Duration;

/// The most live entries one function keeps.
///
/// ```
/// use memo_core::Limit;
///
/// assert_eq!(Limit::from_setting(-1), Ok(Limit::Unbounded));
/// assert_eq!(Limit::from_setting(0), Ok(Limit::Off));
/// assert_eq!(Limit::from_setting(500).unwrap().max(), Some(500));
/// assert!(Limit::from_setting(-2).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `0`: caching is off; the function always runs its body.
    Off,
    /// `-1`: no limit.
    Unbounded,
    /// At most this many entries; the least recently used go first.
    Max(NonZeroUsize),
}

/// How long an entry lives.
///
/// ```
/// use std::time::Duration;
/// use memo_core::Expire;
///
/// assert_eq!(Expire::from_setting(-1), Ok(Expire::Never));
/// assert_eq!(Expire::from_setting(60).unwrap().after(), Some(Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expire {
    /// `0`: caching is off; the function always runs its body.
    Off,
    /// `-1`: entries never expire.
    Never,
    /// Entries expire this long after they are stored.
    After(Duration),
}

/// Why a whole number is not a `limit` or an `expire`.
pub const SETTING_RULE: &str = "use -1 for none, 0 to turn caching off, or a positive number";

impl Limit {
    /// The rule of `limit` (in the attribute and in `MEMO_DEFAULT_LIMIT`): `-1` none,
    /// `0` off, `n > 0` at most `n` entries.
    ///
    /// # Errors
    /// [`SETTING_RULE`] for a number below `-1`.
    pub const fn from_setting(n: i64) -> Result<Limit, &'static str> {
        match n {
            -1 => Ok(Limit::Unbounded),
            0 => Ok(Limit::Off),
            n if n > 0 => {
                match NonZeroUsize::new(if n as u64 > usize::MAX as u64 { usize::MAX } else { n as usize }) {
                    Some(max) => Ok(Limit::Max(max)),
                    None => Ok(Limit::Off),
                }
            }
            _ => Err(SETTING_RULE),
        }
    }

    /// The whole number this limit is written as.
    pub fn to_setting(self) -> i64 {
        match self {
            Limit::Off => 0,
            Limit::Unbounded => -1,
            Limit::Max(n) => i64::try_from(n.get()).unwrap_or(i64::MAX),
        }
    }

    /// The most entries, if bounded.
    pub fn max(self) -> Option<usize> {
        match self {
            Limit::Max(n) => Some(n.get()),
            Limit::Off | Limit::Unbounded => None,
        }
    }
}

impl Expire {
    /// The rule of `expire` (in the attribute and in `MEMO_DEFAULT_EXPIRE`), in
    /// seconds: `-1` never, `0` off, `n > 0` after `n` seconds.
    ///
    /// # Errors
    /// [`SETTING_RULE`] for a number below `-1`.
    pub const fn from_setting(seconds: i64) -> Result<Expire, &'static str> {
        match seconds {
            -1 => Ok(Expire::Never),
            0 => Ok(Expire::Off),
            n if n > 0 => Ok(Expire::After(Duration::from_secs(n as u64))),
            _ => Err(SETTING_RULE),
        }
    }

    /// The whole number of seconds this expiry is written as.
    pub fn to_setting(self) -> i64 {
        match self {
            Expire::Off => 0,
            Expire::Never => -1,
            Expire::After(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// How long an entry lives, if it expires.
    pub fn after(self) -> Option<Duration> {
        match self {
            Expire::After(d) => Some(d),
            Expire::Off | Expire::Never => None,
        }
    }

    /// [`after`](Expire::after) in milliseconds.
    pub fn after_ms(self) -> Option<u64> {
        self.after().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The largest `expire_jitter`, in percent: lifetimes stay positive.
pub const MAX_EXPIRE_JITTER: u8 = 90;

/// The rule of `expire_jitter` (in the attribute and in `MEMO_DEFAULT_EXPIRE_JITTER`):
/// a percentage from 0 to [`MAX_EXPIRE_JITTER`].
///
/// # Errors
/// What is wrong, for a number out of range.
pub const fn jitter_from_setting(percent: i64) -> Result<u8, &'static str> {
    if percent >= 0 && percent <= MAX_EXPIRE_JITTER as i64 {
        Ok(percent as u8)
    } else {
        Err("use a whole percentage from 0 to 90")
    }
}

/// A function's resolved `limit`, `expire` and `expire_jitter`: the attribute's, else
/// the configuration's. A store is opened only when neither `limit` nor `expire` is
/// `Off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The most live entries.
    pub limit: Limit,
    /// How long an entry lives.
    pub expire: Expire,
    /// How far, in percent either way, each entry's lifetime is spread around `expire`,
    /// so that entries stored together do not expire together.
    pub expire_jitter: u8,
    /// `stale`: how long, in ms, an expired value is kept to fall back on when the body
    /// fails; 0 for not at all.
    pub stale_ms: u64,
    /// `refresh`: the age, in ms, past which a hit recomputes the entry in the
    /// background; 0 for never.
    pub refresh_ms: u64,
    /// `refresh = "early"`: the function's body time, by which a hit recomputes an
    /// entry early with a probability that rises as its expiry nears (see
    /// [`BodyTime::due`](crate::BodyTime::due)); `None` otherwise.
    pub early: Option<&'static crate::BodyTime>,
}

/// How fresh a stored value is, for `stale` and `refresh` (see [`Policy::freshness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its lifetime, and younger than `refresh`.
    Fresh,
    /// Within its lifetime, older than `refresh`: served, and recomputed in the background.
    Refresh,
    /// Past its lifetime, within `stale`: a miss, whose computation falls back on it
    /// when the body fails.
    Stale,
}

impl Policy {
    /// A policy with no `expire_jitter`, `stale` or `refresh`.
    pub fn new(limit: Limit, expire: Expire) -> Policy {
        Policy { limit, expire, expire_jitter: 0, stale_ms: 0, refresh_ms: 0, early: None }
    }

    /// How long a store keeps the entry whose key hashes to `hash`, in ms: its lifetime,
    /// plus `stale`. `None` for never.
    pub fn retention_ms(&self, hash: u64) -> Option<u64> {
        self.lifetime_ms(hash).map(|ms| ms + self.stale_ms)
    }

    /// The longest [`retention_ms`](Policy::retention_ms) of any entry.
    pub fn max_retention_ms(&self) -> Option<u64> {
        self.max_lifetime_ms().map(|ms| ms + self.stale_ms)
    }

    /// Whether `stale` or `refresh` asks stores to tell how fresh each value is.
    pub fn tracks_freshness(&self) -> bool {
        self.stale_ms != 0 || self.refresh_ms != 0 || self.early.is_some()
    }

    /// How fresh the value of the entry whose key hashes to `hash`, written at
    /// `written_ms`, is at `now_ms` (all by the same clock). Without an expiry, only
    /// `refresh = N` applies; `refresh = "early"` needs one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memo_core::{Expire, Freshness, Limit, Policy};
    ///
    /// let policy = Policy { stale_ms: 5_000, refresh_ms: 2_000, ..Policy::new(Limit::Unbounded, Expire::After(Duration::from_secs(10))) };
    /// assert_eq!(policy.freshness(0, 1_000, 7), Freshness::Fresh);
    /// assert_eq!(policy.freshness(0, 3_000, 7), Freshness::Refresh);
    /// assert_eq!(policy.freshness(0, 11_000, 7), Freshness::Stale);
    /// ```
    pub fn freshness(&self, written_ms: u64, now_ms: u64, hash: u64) -> Freshness {
        let age = now_ms.saturating_sub(written_ms);
        match self.lifetime_ms(hash) {
            Some(lifetime) if age >= lifetime => Freshness::Stale,
            _ if self.refresh_ms != 0 && age >= self.refresh_ms => Freshness::Refresh,
            Some(lifetime) if self.early.is_some_and(|body| body.due(lifetime - age)) => Freshness::Refresh,
            _ => Freshness::Fresh,
        }
    }

    /// Whether caching is on: neither `limit` nor `expire` is `Off`.
    pub fn caches(&self) -> bool {
        self.limit != Limit::Off && self.expire != Expire::Off
    }

    /// The longest lifetime an entry may get, in milliseconds (`expire` plus the jitter).
    pub fn max_lifetime_ms(&self) -> Option<u64> {
        let base = self.expire.after_ms()?;
        Some(base + base / 100 * u64::from(self.expire_jitter))
    }

    /// The lifetime in milliseconds of the entry whose key hashes to `hash`: `expire`
    /// spread by up to `expire_jitter` percent either way, the same for the same hash.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memo_core::{Expire, Limit, Policy};
    ///
    /// let policy = Policy { expire_jitter: 20, ..Policy::new(Limit::Unbounded, Expire::After(Duration::from_secs(10))) };
    /// let lifetimes: Vec<u64> = (0..1000_u64).filter_map(|h| policy.lifetime_ms(h.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
    /// assert!(lifetimes.iter().all(|ms| (8_000..=12_000).contains(ms)));
    /// assert!(lifetimes.iter().min() < Some(&8_500) && lifetimes.iter().max() > Some(&11_500));
    /// ```
    pub fn lifetime_ms(&self, hash: u64) -> Option<u64> {
        let base = self.expire.after_ms()?;
        let spread = base / 100 * u64::from(self.expire_jitter);
        if spread == 0 {
            return Some(base);
        }
        let offset = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) % (2 * spread + 1);
        Some((base - spread + offset).max(1))
    }
}
