//! Blocking on a future whose work happens on another thread (the library's runtimes):
//! the caller's thread polls it and parks in between, so that a blocking call can wait
//! on an async connection inside or outside any runtime of the caller's.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Wakes the thread parked in [`park_until`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The longest park between two polls, in case a wake-up is lost.
const MAX_PARK: Duration = Duration::from_millis(50);

/// Polls `future` on this thread, parking between polls, until it is ready, or `None`
/// once `deadline` has passed.
pub(crate) fn park_until<T>(future: impl Future<Output = T>, deadline: Instant) -> Option<T> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return Some(value);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        thread::park_timeout(left.min(MAX_PARK));
    }
}
