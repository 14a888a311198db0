//! The stores of [memo-alchemy](https://docs.rs/memo-alchemy). Each implements
//! [`memo_core::Backend`].
//!
//! - [`Memory`]: values in this process, LRU-evicted, the default.
//! - [`Json`] and [`Pickle`] (feature `redis`, on by default): values in Redis.
//! - [`DistributedMemory`] (feature `redis`): values in memory, clears shared through Redis.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod lru;
mod memory;
#[cfg(feature = "redis")]
pub mod redis;

pub use memory::Memory;
#[cfg(feature = "redis")]
pub use redis::{DistributedMemory, Json, Pickle};
