//! One flat error type for everything a user can get wrong or a device can refuse.

/// Every failure wgtrain reports. Messages are one line and name the thing and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network description itself is inconsistent (layer widths, activation placement, loss pairing).
    #[error("invalid network: {0}")]
    InvalidNetwork(String),

    /// Data or parameters whose size does not match the network.
    #[error("{what} expects {expected}, got {got}")]
    Shape {
        /// The data or parameter that was checked (`targets`, `layer 0 weights`, …).
        what: String,
        /// The size or count the network requires.
        expected: String,
        /// The size or count that was passed.
        got: String,
    },

    /// A value outside its allowed range (learning rate, class index, device name, ...).
    #[error("invalid {what}: {message}")]
    InvalidValue {
        /// The setting or input the value was given for (`learning rate`, `optimizer`, …).
        what: String,
        /// Why it is refused, usually with the allowed range and the value received.
        message: String,
    },

    /// A file that cannot be opened, read or written.
    #[error("{path}: {message}")]
    File {
        /// The file's path as given, displayed.
        path: String,
        /// Why, often the operating system's error.
        message: String,
    },

    /// A file whose content is not what its format requires (CSV, IDX, gzip, safetensors, metadata).
    #[error("{path}: {message}")]
    Format {
        /// The file's path as given, displayed.
        path: String,
        /// What in the content breaks the format, and where.
        message: String,
    },

    /// Training produced a non-finite loss or parameters.
    #[error("training diverged: {0}")]
    Diverged(String),

    /// No wgpu adapter of the requested kind exists on this machine.
    #[error("no {0} adapter found (docs/devices.md says how to get one; lavapipe: apt-get install mesa-vulkan-drivers)")]
    NoAdapter(String),

    /// What a model would allocate does not fit the device (one buffer, or its free memory).
    #[error("not enough memory: {0}")]
    Memory(String),

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

/// Longest piece of user input quoted in a message, in characters.
pub const QUOTE_CHARS: usize = 80;

/// `text` for a one-line message: in backquotes, control characters (newlines included) escaped, and cut
/// to [`QUOTE_CHARS`] characters with `…` and the full length when longer.
pub fn quote(text: &str) -> String {
    let chars = text.chars().count();
    let shown: String = text
        .chars()
        .take(QUOTE_CHARS)
        .flat_map(|c| {
            // Control characters, and the invisible marks that reorder text (bidi overrides), escaped.
            let invisible = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}' | '\u{feff}');
            if invisible {
                c.escape_unicode().collect::<Vec<_>>()
            } else if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if chars > QUOTE_CHARS {
        format!("`{shown}…` ({chars} characters)")
    } else {
        format!("`{shown}`")
    }
}

/// A message from another library made fit for one line: control characters escaped, cut to a few
/// hundred characters.
pub(crate) fn one_line(message: impl std::fmt::Display) -> String {
    let text = message.to_string();
    let mut out: String = text
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}
