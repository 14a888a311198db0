//! The background drain: a full clear returns after one round trip, having made every
//! entry unreadable (the epoch moved on) and renamed the index aside into the drains
//! set; this thread then removes the old entries in batches of a few milliseconds of
//! Redis each. The drains set lives in Redis, so a drain that a crash interrupted is
//! finished by any process that uses json or pickle (it looks every [`IDLE`]).

use std::sync::Once;
use std::thread;
use std::time::Duration;

use memo_core::Config;
use parking_lot::{Condvar, Mutex};

use super::conn::{block, Redis};
use super::namespace::{drains, epoch_of_draining};
use super::ops;

/// How often an idle drain looks for work left by other processes or a crash.
const IDLE: Duration = Duration::from_secs(2);
/// The pause between two batches, so that the drain never holds Redis for long.
const BETWEEN_BATCHES: Duration = Duration::from_millis(1);

static WAKE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Starts the drain thread of this process (once).
pub(crate) fn start() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        thread::Builder::new()
            .name("memo-alchemy-drain".into())
            .spawn(run)
            .expect("the OS can start memo-alchemy's drain thread");
    });
}

/// Tells the drain a clear has left work.
pub(crate) fn poke() {
    start();
    *WAKE.0.lock() = true;
    WAKE.1.notify_one();
}

fn run() {
    let drains = drains(Config::global());
    loop {
        drain_all(&drains);
        let mut woken = WAKE.0.lock();
        if !*woken {
            WAKE.1.wait_for(&mut woken, IDLE);
        }
        *woken = false;
    }
}

/// How long a listed draining index may be absent before it is forgotten: its clear
/// lists it, then renames the index to it a round trip later, or crashed in between.
const ABSENT_FOR: Duration = Duration::from_secs(600);

/// Drains every listed index, until none is left (but those not yet renamed by their
/// clear) or Redis fails.
pub(crate) fn drain_all(drains: &str) {
    let redis = Redis::global();
    loop {
        let Ok(listed) = redis.run(|io| block(ops::some_draining(io, drains))) else { return };
        let mut progressed = false;
        for draining in listed {
            let Some(epoch) = epoch_of_draining(&draining) else {
                // Not an index of ours: forget it rather than look at it forever.
                let _ = redis.run(|io| block(ops::forget_draining(io, drains, &draining)));
                continue;
            };
            loop {
                match redis.run(|io| block(ops::drain_batch(io, &draining, &epoch))) {
                    Ok(ops::Drained::Some(_)) => {
                        progressed = true;
                        thread::sleep(BETWEEN_BATCHES);
                    }
                    Ok(ops::Drained::Done) => {
                        // Unlisted only once drained: a crash before leaves it listed.
                        let _ = redis.run(|io| block(ops::forget_draining(io, drains, &draining)));
                        progressed = true;
                        break;
                    }
                    Ok(ops::Drained::Absent) => {
                        let listed_at = ops::listed_at_nanos(&draining).unwrap_or(0);
                        if super::wall_nanos().saturating_sub(listed_at) > ABSENT_FOR.as_nanos() {
                            let _ = redis.run(|io| block(ops::forget_draining(io, drains, &draining)));
                        }
                        break;
                    }
                    Err(_) => return,
                }
            }
        }
        if !progressed {
            return;
        }
    }
}
