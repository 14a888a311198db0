//! The stores of [memo-alchemy](https://docs.rs/memo-alchemy). Each implements
//! [`memo_core::Backend`].
//!
//! - [`Memory`]: values in this process, LRU-evicted, the default.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod lru;
mod memory;

pub use memory::Memory;
