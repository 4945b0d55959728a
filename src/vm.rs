//! What makes a LuaJIT VM a luact VM: `package.preload` entries for every embedded Lua module
//! and for `luact.core` (the native half: where this library lives, so `ffi.load` can open it).
use mlua::{Lua, Table};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_lua.rs"));
}

pub fn embedded_source(name: &str) -> Option<(&'static str, &'static str)> {
    embedded::MODULES.iter().find(|(n, _, _)| *n == name).map(|(_, chunk, src)| (*chunk, *src))
}

/// The table `require "luact.core"` returns.
pub fn core_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("path", crate::ffi::library_path())?;
    t.set("version", env!("CARGO_PKG_VERSION"))?;
    Ok(t)
}

pub fn install_preloads(lua: &Lua) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let preload: Table = package.get("preload")?;
    for (name, chunk, src) in embedded::MODULES {
        let loader = lua.create_function(move |lua, args: mlua::MultiValue| {
            lua.load(*src).set_name(*chunk).call::<mlua::Value>(args)
        })?;
        preload.set(*name, loader)?;
    }
    preload.set("luact.core", lua.create_function(|lua, ()| core_table(lua))?)?;
    Ok(())
}
