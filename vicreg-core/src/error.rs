//! The error type of `vicreg-core`.

/// Everything that can go wrong in `vicreg-core`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Input with the wrong shape, size or values (the message says which).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A configuration value that cannot be used (the message names it).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A loss or gradient that is NaN or infinite.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// Reading or writing a file failed (the message names the file).
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file exists but cannot be used (corrupt, wrong content).
    #[error("{path}: {message}")]
    BadFile {
        /// The file concerned.
        path: std::path::PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A collective operation failed (a rank disappeared, a timeout, a shape mismatch).
    #[error("collective: {0}")]
    Collective(String),
    /// An app's configuration (a file or the flags) failed its checks: `what`
    /// names the file (or says "flags"), `source` the key and the problem.
    #[error("{what}")]
    InvalidConfig {
        /// E.g. `runs/a/config.toml: invalid esc50-audio config`.
        what: String,
        /// The check that failed.
        #[source]
        source: BoxError,
    },
}

/// Any error, boxed (the checks of an app's configuration).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    /// Shorthand for [`Error::Config`].
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// Shorthand for [`Error::BadFile`].
    pub fn bad_file(path: impl Into<std::path::PathBuf>, message: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}
