//! TinyLFU admission: how often each key has been missed lately, in a count-min
//! sketch of 4-bit counters, so that a full cache lets a new value in only when its key
//! has been wanted more often than the entry it would evict.
//!
//! This is what makes a cache keep a popular set through scans and one-off keys (Einziger
//! et al., "TinyLFU: A Highly Efficient Cache Admission Policy", 2017). The sketch
//! counts misses only, on the write path, so that a hit still writes nothing; the
//! residents' own popularity is what the eviction order (CLOCK's referenced bit, LRU's
//! recency) already keeps. Counters are halved every `10 × capacity` additions, so old
//! popularity fades and a shifted working set gets in after a few misses.

/// Counters per `u64` word.
const PER_WORD: usize = 16;
/// Counters per key.
const DEPTH: u64 = 4;

/// The sketch of one shard.
#[derive(Debug)]
pub(crate) struct Sketch {
    words: Vec<u64>,
    /// Counters - 1 (a power of two minus one).
    mask: u64,
    additions: usize,
    /// Additions between two halvings.
    period: usize,
}

impl Sketch {
    /// A sketch for a cache of `capacity` entries: about 8 counters per entry (4 bytes),
    /// no fewer than for 512 entries, so that a small cache still remembers a useful
    /// stretch of history, and no more than for 2^19 (a huge limit allocates no more).
    pub(crate) fn new(capacity: usize) -> Sketch {
        // At most 2^22 counters (2 MiB) per shard, however large the limit.
        let basis = capacity.clamp(512, 1 << 19);
        let counters = (basis * 8).next_power_of_two();
        Sketch {
            words: vec![0; counters / PER_WORD],
            mask: counters as u64 - 1,
            additions: 0,
            period: basis.saturating_mul(10),
        }
    }

    /// The counters of `hash`: double hashing over two halves of a remixed hash.
    fn indexes(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let h = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (a, b) = (h >> 32, (h & 0xffff_ffff) | 1);
        (0..DEPTH).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) & self.mask) as usize)
    }

    fn get(&self, index: usize) -> u8 {
        ((self.words[index / PER_WORD] >> ((index % PER_WORD) * 4)) & 0xf) as u8
    }

    /// Counts one miss of `hash`.
    pub(crate) fn increment(&mut self, hash: u64) {
        let indexes: [usize; DEPTH as usize] = {
            let mut all = self.indexes(hash);
            std::array::from_fn(|_| all.next().unwrap_or(0))
        };
        for index in indexes {
            if self.get(index) < 15 {
                self.words[index / PER_WORD] += 1 << ((index % PER_WORD) * 4);
            }
        }
        self.additions += 1;
        if self.additions >= self.period {
            self.halve();
        }
    }

    /// How often `hash` was missed lately (an overestimate, never an underestimate).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        self.indexes(hash).map(|i| self.get(i)).min().unwrap_or(0)
    }

    /// Halves every counter: popularity fades.
    fn halve(&mut self) {
        for word in &mut self.words {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }

    /// Whether a new key (`candidate`) may replace the entry a full cache would evict
    /// (`victim`): only if it was missed more often lately. Counts the candidate's miss.
    pub(crate) fn admits(&mut self, candidate: u64, victim: Option<u64>) -> bool {
        self.increment(candidate);
        victim.is_none_or(|victim| self.estimate(candidate) > self.estimate(victim))
    }
}

#[cfg(test)]
mod tests {
    use super::Sketch;

    #[test]
    fn counts_saturate_and_fade() {
        let mut sketch = Sketch::new(100);
        for _ in 0..20 {
            sketch.increment(42);
        }
        assert_eq!(sketch.estimate(42), 15, "4-bit counters saturate");
        assert!(sketch.estimate(7) <= 1, "another key is (almost) never counted");
        for k in 0..6_000_u64 {
            sketch.increment(k.wrapping_mul(0x1234_5678_9abc_def1));
        }
        assert!(sketch.estimate(42) < 15, "halved after 10 x capacity additions");
    }

    #[test]
    fn a_key_missed_more_often_than_the_victim_is_admitted() {
        let mut sketch = Sketch::new(100);
        sketch.increment(1); // the victim was missed once, when it came in
        assert!(!sketch.admits(2, Some(1)), "a key seen once does not evict one seen once");
        assert!(sketch.admits(2, Some(1)), "seen twice, it does");
        assert!(sketch.admits(3, None), "nothing to evict: admitted");
    }
}
