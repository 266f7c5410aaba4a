//! The error type of the `encoders` crate, shared by every encoder family
//! (image, audio, text).

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running an encoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error reported by `vicreg-core` (parameter store, I/O helpers, ...).
    #[error(transparent)]
    Core(#[from] vicreg_core::Error),
    /// A file exists but cannot be used (corrupt, wrong tensors, wrong shapes);
    /// the message says what is wrong.
    #[error("{path}: {message}")]
    BadFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration value that cannot be used (the message names it).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Input with the wrong shape, size or values (the message says which).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::Config`].
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    /// Shorthand for [`Error::BadFile`].
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Lets encoder errors flow through `vicreg-core` APIs (e.g.
/// [`vicreg_core::model::Encoder::forward_t`]) without losing their kind.
impl From<Error> for vicreg_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => vicreg_core::Error::Candle(e),
            Error::Core(e) => e,
            Error::BadFile { path, message } => vicreg_core::Error::BadFile { path, message },
            Error::Io { path, source } => vicreg_core::Error::Io { path, source },
            Error::Config(m) => vicreg_core::Error::Config(m),
            Error::InvalidInput(m) => vicreg_core::Error::InvalidInput(m),
        }
    }
}
