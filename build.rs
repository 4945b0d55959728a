//! Embeds every Lua file under `lua/` into the library (so worker VMs, which never see
//! `package.path`, can `require` the Lua layer), and keeps the library loaded until exit.
use std::fmt::Write as _;
use std::path::Path;

fn collect(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read lua dir").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "lua") {
            let rel = path.strip_prefix("lua").unwrap().with_extension("");
            let mut name = rel.to_string_lossy().replace('/', ".");
            if let Some(stripped) = name.strip_suffix(".init") {
                name = stripped.to_string();
            }
            out.push((name, path.to_string_lossy().into_owned()));
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=lua");
    // LuaJIT's lua_close dlcloses C modules while our worker threads may still run their code.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    let mut modules = Vec::new();
    collect(Path::new("lua"), &mut modules);
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let mut src = String::from("/// (module name, chunk name, source) of every embedded Lua file.\n");
    src.push_str("pub static MODULES: &[(&str, &str, &str)] = &[\n");
    for (name, path) in &modules {
        println!("cargo:rerun-if-changed={path}");
        let _ = writeln!(src, "    ({name:?}, {chunk:?}, include_str!({full:?})),",
            chunk = format!("@{}", path.trim_start_matches("lua/")),
            full = format!("{root}/{path}"));
    }
    src.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_lua.rs");
    std::fs::write(out, src).expect("write embedded_lua.rs");
}
