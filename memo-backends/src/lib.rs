//! The stores of [memo-alchemy](https://docs.rs/memo-alchemy). Each implements
//! [`memo_core::Backend`].
//!
//! - [`Memory`]: values in this process, LRU-evicted (exactly up to 64 entries, by
//!   CLOCK above), the default.
//! - [`Json`] and [`Pickle`] (feature `redis`, on by default): values in Redis.
//! - [`DistributedMemory`] (feature `redis`): values in memory, clears shared through Redis.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod lru;
mod memory;
mod read_mostly;
#[cfg(feature = "redis")]
pub mod redis;
mod second_chance;

pub use memory::Memory;
#[cfg(feature = "redis")]
pub use redis::{DistributedMemory, Json, Pickle};
