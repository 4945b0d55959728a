//! The process-wide log sink: whole lines written under one lock (lines from many threads never
//! interleave), to stderr or to a file, and the level filter every thread shares.
use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};
// (parking_lot: a panic while a line is written cannot poison the sink for every thread)
use parking_lot::Mutex;

static SINK: Mutex<Option<std::fs::File>> = parking_lot::const_mutex(None);
/// Lines below this level are dropped (levels are numbered in `lua/luact/logger.lua`); the
/// default is 2, "info" (README: `log_level`).
static LEVEL: AtomicI32 = AtomicI32::new(2);

pub fn write_line(line: &[u8]) -> std::io::Result<()> {
    let mut sink = SINK.lock();
    match sink.as_mut() {
        Some(file) => file.write_all(line),
        None => std::io::stderr().lock().write_all(line),
    }
}

/// `None` sends lines back to stderr.
pub fn redirect(path: Option<&str>) -> std::io::Result<()> {
    let file = match path {
        Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).open(p)?),
        None => None,
    };
    *SINK.lock() = file;
    Ok(())
}

/// True when lines go to a terminal (colours are used then only).
pub fn is_tty() -> bool {
    let redirected = SINK.lock().is_some();
    // SAFETY: isatty only inspects the descriptor.
    !redirected && unsafe { libc::isatty(2) } == 1
}

pub fn set_level(level: i32) {
    LEVEL.store(level, Ordering::Relaxed);
}

/// The format of log lines: 0 text, 1 JSON (one object per line; the Lua logger writes both).
static FORMAT: AtomicI32 = AtomicI32::new(0);

pub fn set_format(format: i32) {
    FORMAT.store(format, Ordering::Relaxed);
}

pub fn format() -> i32 {
    FORMAT.load(Ordering::Relaxed)
}

pub fn level() -> i32 {
    LEVEL.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_from_many_threads_stay_whole() {
        let path = std::env::temp_dir().join(format!("luact-log-{}", std::process::id()));
        super::redirect(Some(path.to_str().unwrap())).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let line = format!("thread {t} line {i} {}\n", "x".repeat(200));
                        super::write_line(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        super::redirect(None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text.lines().count(), 2000);
        assert!(text.lines().all(|l| l.starts_with("thread ") && l.ends_with(&"x".repeat(200))));
    }
}
