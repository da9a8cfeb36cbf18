//! One flat error type for everything a user can get wrong or a device can refuse.

/// Every failure wgtrain reports. Messages are one line and name the thing and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network description itself is inconsistent (layer widths, activation placement, loss pairing).
    #[error("invalid network: {0}")]
    InvalidNetwork(String),

    /// Data or parameters whose size does not match the network.
    #[error("{what} expects {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },

    /// A value outside its allowed range (learning rate, class index, device name, ...).
    #[error("invalid {what}: {message}")]
    InvalidValue { what: String, message: String },

    /// A file that cannot be opened, read or written.
    #[error("{path}: {message}")]
    File { path: String, message: String },

    /// A file whose content is not what its format requires (CSV, IDX, gzip, safetensors, metadata).
    #[error("{path}: {message}")]
    Format { path: String, message: String },

    /// Training produced a non-finite loss or parameters.
    #[error("training diverged: {0}")]
    Diverged(String),

    /// No wgpu adapter of the requested kind exists on this machine.
    #[error("no {0} adapter found (see README: install mesa-vulkan-drivers for lavapipe)")]
    NoAdapter(String),

    /// The GPU device refused an operation (validation, out of memory, device lost, mapping failure).
    #[error("gpu: {0}")]
    Gpu(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl ToString,
        got: impl ToString,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }

    pub(crate) fn file(path: &std::path::Path, message: impl ToString) -> Self {
        Error::File {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }

    pub(crate) fn format(path: &std::path::Path, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.display().to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn value(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidValue {
            what: what.into(),
            message: message.into(),
        }
    }
}
