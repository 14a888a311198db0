//! The paths generated code uses. Not public API: it changes without notice.

use std::marker::PhantomData;

pub use inventory;
/// Every backend kind, under the name the attribute's table gives it.
pub use memo_backends::*;

/// `backend = "postgres"` without the `postgres` feature: a type that is no backend
/// kind, so that naming it is a compile error that says which feature to turn on.
#[cfg(not(feature = "postgres"))]
#[derive(Debug)]
pub struct PostgresBackend;
pub use memo_core::plumbing::{Decl, Fallible, Mode, Plain, Registration};
pub use memo_core::{
    AsyncEntry, CacheStats, CachedFunction, Entry, Error, Expire, FunctionCache, KeyRef, Limit, Lookup,
    RenderTags, Selector, StoreFor, StrictKeys,
};
pub use serde::de::DeserializeOwned;
pub use serde::Serialize;

/// Spawns an `async` function's background refresh: on the caller's tokio runtime when
/// there is one, else on the library's refresh threads.
pub fn spawn(future: memo_core::BoxFuture<'static, ()>) {
    #[cfg(any(feature = "redis", feature = "postgres"))]
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        drop(runtime.spawn(future));
        return;
    }
    memo_core::plumbing::block_in_background(future);
}

/// The owner of an associated function's handle: its `Self`, lifetimes erased, so
/// that each concrete type of a generic `impl` has entries of its own.
pub fn owner<T: ?Sized>() -> std::any::TypeId {
    typeid::of::<T>()
}

/// The owner of a free function's handle.
pub fn free_owner() -> std::any::TypeId {
    std::any::TypeId::of::<()>()
}

/// Finds out, from the return type itself (so through type aliases such as
/// `type Res<T> = Result<T, String>`), whether a return value is an `Err`, which is
/// never cached: `(&&ReturnProbe::<R>::new()).__memo_discard()` resolves to
/// [`ProbeResult`] when `R` is a `Result` and to [`ProbeAny`] otherwise.
#[derive(Debug)]
pub struct ReturnProbe<R>(PhantomData<fn() -> R>);

impl<R> ReturnProbe<R> {
    /// The probe of `R`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        ReturnProbe(PhantomData)
    }
}

/// [`ReturnProbe`] of a `Result`: an `Err` is discarded.
pub trait ProbeResult<T, E> {
    /// `Result::is_err`.
    fn __memo_discard(&self) -> fn(&Result<T, E>) -> bool {
        Result::is_err
    }
}
impl<T, E> ProbeResult<T, E> for &ReturnProbe<Result<T, E>> {}

/// [`ReturnProbe`] of any other type: every value is kept.
pub trait ProbeAny<R> {
    /// Never discards.
    fn __memo_discard(&self) -> fn(&R) -> bool {
        |_| false
    }
}
impl<R> ProbeAny<R> for ReturnProbe<R> {}

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
