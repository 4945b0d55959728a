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

    /// What a status means, for an error that carries no message of its own.
    pub fn text(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Full => "inbox full",
            Status::BadArgument => "bad argument",
            Status::NotRunning => "luact is not running",
            Status::AlreadyRunning => "luact is already running",
            Status::Os => "operating system error",
            Status::Panic => "panic in the core",
            Status::Unreachable => "unreachable",
        }
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

/// The text a Lua caller sees (`luact_last_error`): the message alone, as short as a C
/// library's (the status travels as the code, so its name is not repeated), without the
/// " (os error N)" that std appends to an OS error's text.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Status(s, msg) if msg.is_empty() => write!(f, "{}", s.text()),
            Error::Status(_, msg) => f.write_str(&without_os_codes(msg)),
            Error::Io(e) => f.write_str(&without_os_codes(&e.to_string())),
        }
    }
}

/// The words of an errno ("Connection refused"), for reasons that reach Lua as text.
pub fn os_error_text(errno: i32) -> String {
    without_os_codes(&std::io::Error::from_raw_os_error(errno).to_string())
}

/// `msg` without each " (os error N)" in it.
fn without_os_codes(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" (os error ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " (os error ".len()..];
        match tail.find(')') {
            Some(j) if j > 0 && tail[..j].bytes().all(|b| b.is_ascii_digit()) => rest = &tail[j + 1..],
            _ => {
                out.push_str(" (os error ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_short_messages() {
        let bind = Error::new(Status::Os, "bind 127.0.0.1:80: Address already in use (os error 98)");
        assert_eq!(bind.to_string(), "bind 127.0.0.1:80: Address already in use");
        let io = Error::from(std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(io.to_string(), "Connection refused");
        assert_eq!(os_error_text(libc::ECONNREFUSED), "Connection refused");
        assert_eq!(Error::new(Status::BadArgument, "bad address 'x'").to_string(), "bad address 'x'");
        assert_eq!(Error::new(Status::Unreachable, "").to_string(), "unreachable");
        // a parenthesis that is not an OS code stays
        assert_eq!(without_os_codes("a (os error x) b (os error 2)"), "a (os error x) b");
    }
}
