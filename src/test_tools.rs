//! Tests only: running the external tools some tests check against (`luajit`, `openssl`).
//! install.sh installs every one of them, so a missing tool fails the test that needs it, with
//! the reason; a test never returns early and counts as passed without having checked anything.
use std::path::PathBuf;
use std::process::{Command, Output};

/// The path of `name` found on PATH; panics (fails the test) when it is not there.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not on PATH: this test needs it (install.sh installs it)"))
}

/// Runs `name` with `args` and returns its output; panics when the tool is missing or cannot start.
pub fn run_tool(name: &str, args: &[&str]) -> Output {
    let prog = require_tool(name);
    Command::new(&prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", prog.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "`luact-no-such-tool` is not on PATH")]
    fn a_missing_tool_fails_the_test() {
        run_tool("luact-no-such-tool", &["-v"]);
    }

    #[test]
    fn a_present_tool_runs() {
        assert!(run_tool("sh", &["-c", "exit 0"]).status.success());
    }
}
