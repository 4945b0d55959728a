//! Status codes returned by every `extern "C"` function of the core.
//!
//! Mirrored in `lua/luact/ffi.lua` (`ffi.status`): change both together.

/// Result of an FFI call. Non-negative values are successes (some calls return a count).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// The target inbox is full; nothing was queued.
    Full = -1,
    /// An argument was out of range (a thread id, a size, a null pointer).
    BadArgument = -2,
    /// The runtime is not running (start was not called, or it has stopped).
    NotRunning = -3,
    /// The runtime is already running (start called twice).
    AlreadyRunning = -4,
    /// An operating-system call failed; the message is in `luact_last_error`.
    Os = -5,
    /// A Rust panic was caught at the FFI boundary; the message is in `luact_last_error`.
    Panic = -6,
    /// The node cannot be reached (not a node, connection lost, or quarantined after a loss).
    Unreachable = -8,
}

impl Status {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The error type of the core's fallible internals; turned into a `Status` at the FFI boundary.
#[derive(Debug)]
pub enum Error {
    Status(Status, String),
    Io(std::io::Error),
}

impl Error {
    pub fn new(status: Status, msg: impl Into<String>) -> Self {
        Error::Status(status, msg.into())
    }
    pub fn status(&self) -> Status {
        match self {
            Error::Status(s, _) => *s,
            Error::Io(_) => Status::Os,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Status(s, msg) => write!(f, "{s:?}: {msg}"),
            Error::Io(e) => write!(f, "os error: {e}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
