//! How a function's return value maps to what is cached: all of it, or the `Ok` of a
//! `Result`.

/// Splits a return value into the part to cache and rebuilds it from a cached value.
pub trait Mode<R> {
    /// What is cached.
    type Value;
    /// The value to cache, or the return value to hand back uncached.
    ///
    /// # Errors
    /// The return value itself when it is not to be cached (an `Err`).
    fn split(ret: R) -> Result<Self::Value, R>;
    /// The return value for a cached value.
    fn join(value: Self::Value) -> R;
}

/// Caches the whole return value (`Option` included: `None` is cached too).
#[derive(Debug)]
pub enum Plain {}

impl<R> Mode<R> for Plain {
    type Value = R;
    #[inline]
    fn split(ret: R) -> Result<R, R> {
        Ok(ret)
    }
    #[inline]
    fn join(value: R) -> R {
        value
    }
}

/// Caches the `Ok` value of a `Result`; an `Err` is returned and not stored.
#[derive(Debug)]
pub enum Fallible {}

impl<T, E> Mode<Result<T, E>> for Fallible {
    type Value = T;
    #[inline]
    fn split(ret: Result<T, E>) -> Result<T, Result<T, E>> {
        match ret {
            Ok(value) => Ok(value),
            Err(e) => Err(Err(e)),
        }
    }
    #[inline]
    fn join(value: T) -> Result<T, E> {
        Ok(value)
    }
}
