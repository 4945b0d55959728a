//! Binding of the log sink (src/logger.rs): the Lua logger formats a line and writes it whole
//! here; the level, the format (text or JSON) and where lines go (stderr or a file) are
//! process-wide.
use super::{bytes, guard, guard_value};
use crate::status::{Error, Status};

/// Writes one whole line (the caller includes the newline).
///
/// # Safety
/// `line` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_log_write(line: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `line`.
        crate::logger::write_line(unsafe { bytes(line, len) })?;
        Ok(0)
    })
}

/// Sends log lines to the file at `path` (appending), or back to stderr when `len` is 0.
///
/// # Safety
/// `path` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_log_redirect(path: *const u8, len: usize) -> i32 {
    guard(|| {
        let path = if len == 0 {
            None
        } else {
            // SAFETY: the caller's promise on `path`.
            Some(std::str::from_utf8(unsafe { bytes(path, len) }).map_err(|_| Error::new(Status::BadArgument, "path is not UTF-8"))?)
        };
        crate::logger::redirect(path)?;
        Ok(0)
    })
}

/// Sets the log level (process-wide; the Lua logger reads it to filter lines).
#[no_mangle]
pub extern "C" fn luact_log_set_level(level: i32) {
    crate::logger::set_level(level)
}

/// The level `luact_log_set_level` set.
#[no_mangle]
pub extern "C" fn luact_log_level() -> i32 {
    crate::logger::level()
}

/// 0: text lines, 1: one JSON object per line (process-wide, like the level).
#[no_mangle]
pub extern "C" fn luact_log_set_format(format: i32) {
    crate::logger::set_format(format)
}

/// The format `luact_log_set_format` set.
#[no_mangle]
pub extern "C" fn luact_log_format() -> i32 {
    crate::logger::format()
}

/// 1 when log lines go to a terminal (the text format colours them then), else 0.
#[no_mangle]
pub extern "C" fn luact_log_is_tty() -> i32 {
    guard_value(0, || crate::logger::is_tty() as i32)
}
