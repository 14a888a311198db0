//! The stores of [memo-alchemy](https://docs.rs/memo-alchemy). Each backend is one
//! file: a kind ([`memo_core::BackendKind`], the unit struct `#[cache(backend = ...)]`
//! names) and its store ([`memo_core::Backend`]).
//!
//! - [`MemoryBackend`] / [`Memory`]: values in this process, LRU-evicted (exactly up to
//!   64 entries, by CLOCK above), the default.
//! - [`JsonBackend`] and [`PickleBackend`] / [`Json`] and [`Pickle`] (feature `redis`,
//!   on by default): values in Redis.
//! - [`DistributedMemoryBackend`] / [`DistributedMemory`] (feature `redis`): values in
//!   memory, clears shared through Redis.
//! - [`PostgresBackend`] / [`Postgres`] (feature `postgres`): values in a PostgreSQL
//!   table, as `jsonb`.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

#[cfg(any(feature = "redis", feature = "postgres"))]
mod breaker;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod keys;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod lease;
mod lru;
mod memory;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod park;
#[cfg(feature = "postgres")]
pub mod postgres;
mod read_mostly;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod retries;
mod second_chance;
mod sketch;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod tier;

pub use memory::{Memory, MemoryBackend};
#[cfg(feature = "postgres")]
pub use postgres::{Postgres, PostgresBackend};
#[cfg(feature = "redis")]
pub use redis::{DistributedMemory, DistributedMemoryBackend, Json, JsonBackend, Pickle, PickleBackend};
