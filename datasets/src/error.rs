//! The error type of `datasets`.

use std::path::PathBuf;

/// Everything that can go wrong while reading or preparing data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file exists but its content is unusable (corrupt image, malformed JSON/CSV line, bad wav...).
    #[error("{path}: {message}")]
    BadFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it (with a line number where it applies).
        message: String,
    },
    /// A dataset layout problem (missing folder, empty class folder, no files...).
    #[error("{0}")]
    Layout(String),
    /// A bad configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error from vicreg-core.
    #[error(transparent)]
    Core(#[from] vicreg_core::Error),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// For the core's batch iterators (the engine's, the evaluation's): the
/// error as [`vicreg_core::Error::InvalidInput`] with its message.
impl From<Error> for vicreg_core::Error {
    fn from(e: Error) -> Self {
        vicreg_core::Error::invalid(e.to_string())
    }
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// Shorthand for [`Error::BadFile`].
    pub fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
    /// True for errors about one sample's file (which the loader may skip in non-strict mode).
    pub fn is_sample_error(&self) -> bool {
        matches!(self, Error::BadFile { .. } | Error::Io { .. })
    }
}
