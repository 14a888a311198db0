//! The one error type of memo-alchemy.

/// Everything that can go wrong in a cache operation or in configuration.
///
/// A cached call never returns this: when its store fails, the function computes
/// its value directly. Clears, configuration and explicit handle calls do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration setting has a value that cannot be used.
    #[error("invalid configuration: {setting} = {value:?}: {reason}")]
    Config {
        /// The builder method or environment variable, e.g. `MEMO_DEFAULT_LIMIT`.
        setting: &'static str,
        /// The rejected value as given.
        value: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// [`Config::install`](crate::Config::install) ran after a configuration was
    /// already in force.
    #[error("a configuration is already installed; call Config::install once, before the first cached call")]
    AlreadyInstalled,
    /// A partial clear named an argument that the function does not have, or gave a
    /// value of another type.
    #[error("`{function}` has no strict argument `{argument}` of type `{type_name}`")]
    UnknownArgument {
        /// The cached function's path.
        function: String,
        /// The argument name that was given.
        argument: String,
        /// The type of the value that was given.
        type_name: &'static str,
    },
    /// An argument could not be encoded for a strict key.
    #[error("could not encode argument `{argument}` of `{function}`: {message}")]
    Encode {
        /// The cached function's path.
        function: String,
        /// The argument's name.
        argument: String,
        /// What the encoder reported.
        message: String,
    },
    /// A backend failed to carry out an operation.
    #[error("backend `{backend}` failed for `{function}`: {message}")]
    Backend {
        /// The backend's name, e.g. `json`.
        backend: &'static str,
        /// The cached function's path.
        function: String,
        /// What failed, and how to fix it where that is known.
        message: String,
    },
}
