//! The paths generated code uses. Not public API: it changes without notice.

use std::hash::Hash;

pub use inventory;
pub use memo_backends::Memory;
#[cfg(feature = "redis")]
pub use memo_backends::{DistributedMemory, Json, Pickle};
pub use memo_core::{
    CacheStats, CachedFunction, ClearBy, Decl, Error, Fallible, FunctionCache, Lookup, Mode, Plain,
    Registration, Selector, StrictKeys,
};
use serde::Serialize;

/// Fails to compile, on the argument's type, when it cannot be part of a key.
pub fn assert_key<T: ?Sized + ToOwned>()
where
    T::Owned: Hash + Eq + Clone + Send + Sync + 'static,
{
}

/// [`assert_key`], plus `Serialize` for strict keys.
pub fn assert_strict_key<T: ?Sized + ToOwned>()
where
    T::Owned: Hash + Eq + Clone + Send + Sync + Serialize + 'static,
{
}

/// Fails to compile, on the return type, when the cached value cannot be stored.
pub fn assert_value<V: Clone + Send + Sync + 'static>() {}

/// [`assert_value`], plus what the Redis backends need to store and read it back.
pub fn assert_serialized_value<V: Clone + Send + Sync + Serialize + serde::de::DeserializeOwned + 'static>() {
}

/// Adds one argument to a partial clear's selector.
///
/// # Errors
/// [`Error::Encode`] when the value cannot be encoded.
pub fn select<T: Serialize + ?Sized>(
    function: &'static CachedFunction,
    selector: Selector,
    name: &'static str,
    type_text: &'static str,
    value: &T,
) -> Result<Selector, Error> {
    selector.with(name, type_text, value).map_err(|e| Error::Encode {
        function: function.path().to_owned(),
        argument: name.to_owned(),
        message: e.to_string(),
    })
}
