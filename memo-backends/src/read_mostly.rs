//! A sharded reader-writer lock whose readers write only their own thread's cache line.
//!
//! An ordinary `RwLock` counts readers in one word, so every read writes a line that
//! all cores share, and two threads reading at once pass that line back and forth.
//! Here each reader announces itself in its thread's stripe (see
//! `memo_core::plumbing::Stripes`) and then checks its shard's writer flag, which it only
//! reads. A writer raises its shard's flag, then waits until every reader that was
//! inside at that moment has left. This is the distributed reader indicator of
//! BRAVO-style and big-reader locks: a read costs one atomic add on a line the thread
//! owns; a write costs a look at every stripe.
//!
//! A stripe is one line holding a counter per shard, so a writer waits only for the
//! readers of its own shard: a reader of another shard that lost its core in the
//! middle of a read holds up no one. A thread's own counter counts up on entering and
//! again on leaving (odd: inside), so a writer waits for a change, not for a zero, and
//! readers that keep coming cannot starve it. Threads without a stripe of their own
//! share one whose counters count readers inside, and a writer waits for it to empty.
//!
//! A reader that finds its shard's flag raised steps back, spins until the write is
//! done, and after a while reads under the shard's mutex instead.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memo_core::plumbing::Stripes;
use parking_lot::Mutex;

/// Spins a reader waits for a writer before it queues on its shard's mutex.
const READER_SPINS: u32 = 1 << 10;

/// The most shards: one counter each in a stripe's 128 bytes.
pub(crate) const MAX_SHARDS: usize = 16;

/// A thread's readers inside, per shard.
type Counts = [AtomicUsize; MAX_SHARDS];

/// Shards of `T` that many threads read at once and one thread per shard at a time
/// changes. Writers of different shards work at once, and readers of a shard never
/// wait for another shard's writer.
#[derive(Debug)]
pub(crate) struct ReadMostly<T> {
    /// Per stripe and shard: owned ones count enters and leaves, the shared one readers
    /// inside.
    readers: Stripes<Counts>,
    shards: Box<[Shard<T>]>,
}

/// One shard, on lines of its own (the adjacent-line prefetcher pairs lines).
#[derive(Debug)]
#[repr(align(128))]
struct Shard<T> {
    /// Raised by a writer (holding `writers`) before it waits for the readers.
    writing: AtomicBool,
    writers: Mutex<()>,
    value: UnsafeCell<T>,
}

// SAFETY: readers on several threads get `&T` at once, which needs `T: Sync`; a writer
// gets `&mut T` on whichever thread writes, which needs `T: Send`. Mutual exclusion of
// readers and writers is what `read` and `write` below establish.
unsafe impl<T: Send + Sync> Sync for ReadMostly<T> {}

impl<T> ReadMostly<T> {
    /// One shard per value.
    pub(crate) fn new(shards: impl IntoIterator<Item = T>) -> Self {
        let shards: Box<[_]> = shards
            .into_iter()
            .map(|v| Shard {
                writing: AtomicBool::new(false),
                writers: Mutex::new(()),
                value: UnsafeCell::new(v),
            })
            .collect();
        assert!((1..=MAX_SHARDS).contains(&shards.len()), "a ReadMostly has 1 to {MAX_SHARDS} shards");
        ReadMostly { readers: Stripes::default(), shards }
    }

    /// How many shards there are.
    pub(crate) fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Runs `f` on shard `index` while no writer changes it.
    #[inline]
    pub(crate) fn read<R>(&self, index: usize, f: impl FnOnce(&T) -> R) -> R {
        let shard = &self.shards[index];
        let (counts, mut owned) = self.readers.local();
        let mut count = &counts[index];
        if owned && count.load(Ordering::Relaxed) % 2 == 1 {
            // A read inside a read of this shard (a key's `Eq` calling the function
            // again): odd/even cannot count two, so count this one in the shared stripe.
            (count, owned) = (&self.readers.shared()[index], false);
        }
        let mut waited = 0_u32;
        loop {
            // SeqCst with the flag load below and with the writer's flag store and
            // stripe loads: either this reader sees the flag, or the writer sees it.
            count.fetch_add(1, Ordering::SeqCst);
            let inside = Inside { count, owned };
            if !shard.writing.load(Ordering::SeqCst) {
                // SAFETY: a writer raises the flag before it takes `&mut T` and waits
                // until every reader inside has left; this reader is counted and saw no
                // flag.
                return f(unsafe { &*shard.value.get() });
            }
            drop(inside);
            // A write takes a fraction of a microsecond: wait for it spinning, and only
            // then queue on the mutex (which would park the thread).
            while shard.writing.load(Ordering::Relaxed) {
                waited += 1;
                if waited > READER_SPINS {
                    return Self::read_locked(shard, f);
                }
                std::hint::spin_loop();
            }
        }
    }

    /// The reader's way around a busy writer: wait for it on the mutex, read under it.
    #[cold]
    fn read_locked<R>(shard: &Shard<T>, f: impl FnOnce(&T) -> R) -> R {
        let _writers = shard.writers.lock();
        // SAFETY: writers take `&mut T` only while holding `writers`, which we hold.
        f(unsafe { &*shard.value.get() })
    }

    /// Runs `f` on shard `index` with no reader or other writer inside it.
    ///
    /// `f` must not read this lock: the writer would wait for itself.
    pub(crate) fn write<R>(&self, index: usize, f: impl FnOnce(&mut T) -> R) -> R {
        let shard = &self.shards[index];
        let _writers = shard.writers.lock();
        let _raised = Raised::new(&shard.writing);
        for counts in self.readers.owned() {
            let count = &counts[index];
            let seen = count.load(Ordering::SeqCst);
            if seen % 2 == 1 {
                wait_until(|| count.load(Ordering::SeqCst) != seen);
            }
        }
        let shared = &self.readers.shared()[index];
        wait_until(|| shared.load(Ordering::SeqCst) == 0);
        // SAFETY: we hold the shard's `writers`, so no other writer and no locked
        // reader is inside it; the flag is raised and every reader inside after that
        // has left, so no reader is inside and none enters until `_raised` lowers it.
        f(unsafe { &mut *shard.value.get() })
    }
}

/// Spins until `done`, yielding the core after a while.
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0_u32;
    while !done() {
        spins += 1;
        if spins < 256 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// A counted reader; leaving (even by a panic in `f`) counts it out.
struct Inside<'a> {
    count: &'a AtomicUsize,
    owned: bool,
}

impl Drop for Inside<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.owned {
            // Only this thread writes its own stripe: no read-modify-write needed. Even
            // again: outside.
            self.count.store(self.count.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        } else {
            self.count.fetch_sub(1, Ordering::Release);
        }
    }
}

/// The raised writer flag; lowered on drop, even by a panic in the writer's `f`.
struct Raised<'a>(&'a AtomicBool);

impl<'a> Raised<'a> {
    fn new(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Raised(flag)
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_never_see_a_half_done_write() {
        // The writer keeps the two halves equal; a reader that saw a write in progress
        // would see them differ.
        let lock = ReadMostly::new([(0_u64, 0_u64), (0, 0)]);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        lock.read(0, |(a, b)| assert_eq!(a, b));
                        lock.read(1, |(a, b)| assert_eq!(a, b));
                    }
                });
            }
            s.spawn(|| {
                for i in 0..2_000 {
                    lock.write(i % 2, |(a, b)| {
                        *a += 1;
                        std::hint::black_box(&*a);
                        *b += 1;
                    });
                }
            });
        });
        assert_eq!(lock.read(0, |v| *v), (1_000, 1_000));
        assert_eq!(lock.read(1, |v| *v), (1_000, 1_000));
    }

    #[test]
    fn a_read_inside_a_read_keeps_writers_out_until_both_leave() {
        let lock = ReadMostly::new([0_u64]);
        let entered = std::sync::Barrier::new(2);
        let written = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                lock.read(0, |_| {
                    lock.read(0, |_| ());
                    entered.wait();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    assert!(!written.load(Ordering::SeqCst), "the writer waited for the outer read");
                });
            });
            entered.wait();
            lock.write(0, |v| *v += 1);
            written.store(true, Ordering::SeqCst);
        });
    }

    #[test]
    fn a_panicking_reader_or_writer_leaves_the_lock_usable() {
        let lock = ReadMostly::new([1]);
        let read =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lock.read(0, |_| panic!("in a read"))));
        assert!(read.is_err());
        let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock.write(0, |_| panic!("in a write"))
        }));
        assert!(write.is_err());
        lock.write(0, |v| *v += 1);
        assert_eq!(lock.read(0, |v| *v), 2);
    }
}
