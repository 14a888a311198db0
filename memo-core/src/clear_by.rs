//! `ClearBy`: the partial-clear builder of strict methods, which name arguments at
//! run time. (Free functions get a generated builder with one typed setter per
//! argument.)

use serde::Serialize;

use crate::key::Selector;
use crate::{CachedFunction, Error};

/// Selects entries of a strict method by argument name, then clears them.
///
/// ```ignore
/// Repo::find_cache_clear_by().arg("id", 7_u64).clear()?;
/// ```
#[derive(Debug)]
#[must_use = "a partial clear does nothing until `.clear()`"]
pub struct ClearBy {
    function: &'static CachedFunction,
    selector: Result<Selector, Error>,
}

impl ClearBy {
    #[doc(hidden)]
    pub fn new(function: &'static CachedFunction) -> Self {
        ClearBy { function, selector: Ok(Selector::new()) }
    }

    /// Selects the entries whose argument `name` equals `value`. The value must have the
    /// argument's owned type (`String` or `&str` for a `&str` argument).
    pub fn arg<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Self {
        self.selector = self.selector.and_then(|selector| {
            let function = self.function;
            let index = function.arg_names().iter().position(|n| *n == name);
            let Some(index) = index.filter(|_| name != "self") else {
                return Err(Error::UnknownArgument {
                    function: function.path().to_owned(),
                    argument: name.to_owned(),
                    type_name: std::any::type_name::<T>(),
                });
            };
            let (name, type_text) = (function.arg_names()[index], function.arg_types()[index]);
            selector.with(name, type_text, value).map_err(|e| Error::Encode {
                function: function.path().to_owned(),
                argument: name.to_owned(),
                message: e.to_string(),
            })
        });
        self
    }

    /// Removes the selected entries and cascades; returns the entries removed in all.
    ///
    /// # Errors
    /// An unknown argument name, a value that cannot be encoded, or a store that
    /// cannot be cleared.
    pub fn clear(self) -> Result<usize, Error> {
        self.function.clear_by(&self.selector?)
    }

    /// [`clear`](ClearBy::clear) for `async` callers.
    ///
    /// # Errors
    /// As for [`clear`](ClearBy::clear).
    pub async fn clear_async(self) -> Result<usize, Error> {
        self.function.clear_by_async(&self.selector?).await
    }
}
