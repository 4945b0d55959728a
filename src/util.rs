//! Leaf helpers that know nothing of luact: the text of a caught panic and the path of this
//! shared library. This module imports nothing from the crate, so any module may use it
//! (the binding layer, the runtime, the offload pool and the VM builder all do).
use std::ffi::c_void;

/// The message a panic carried (`panic!("...")` or a formatted one), for an error report.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// The path of this shared library (for `ffi.load` in every VM); empty when the loader cannot
/// say.
pub fn library_path() -> String {
    // SAFETY: Dl_info is a plain C struct of pointers and integers; all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr reads the address of one of our own functions and fills `info`, whose
    // `dli_fname` points at a NUL-terminated string owned by the dynamic loader.
    let ok = unsafe { libc::dladdr(library_path as *const c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return String::new();
    }
    // SAFETY: checked non-null above; the loader keeps the string for the library's lifetime.
    unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_reads_both_kinds_of_payload() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&p), "plain");
        let n = 7;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(&p), "formatted 7");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(5u8)).unwrap_err();
        assert_eq!(panic_message(&p), "unknown panic");
    }

    #[test]
    fn library_path_names_the_binary_holding_this_code() {
        // in a test run the code is in the test executable itself
        let path = library_path();
        assert!(!path.is_empty());
        assert!(std::path::Path::new(&path).exists(), "{path}");
    }
}
