//! luact's core: a Lua C module (`require "luact"`) for LuaJIT. This file only declares the
//! modules and the two Lua entry points; see each module's header for what it owns.
mod clock;
mod conn;
mod datagram;
mod ffi;
mod inbox;
mod lease;
mod listen_limits;
mod logger;
mod memory;
mod metrics;
mod metrics_methods;
mod names;
mod node_flow;
mod node_tls;
mod offload;
mod op_id;
mod ring;
mod runtime;
mod sockaddr;
mod stall;
mod socket;
mod status;
#[cfg(test)]
mod test_rng;
#[cfg(test)]
mod test_tools;
mod tls;
mod transport;
mod util;
mod vm;
mod wire;

// Unit tests are a plain executable, not a module loaded by `luajit`: link LuaJIT for the
// `lua_*` symbols mlua's module mode leaves undefined. (An empty block declares nothing.)
#[cfg(test)]
#[link(name = "luajit-5.1")]
unsafe extern "C" {}

/// `require "luact"` when only the installed library is on the path: give this VM the embedded
/// Lua layer and return the facade (`lua/luact/init.lua`).
#[mlua::lua_module(name = "luact")]
fn luact(lua: &mlua::Lua) -> mlua::Result<mlua::Value> {
    register_for_stalls(lua);
    vm::install_preloads(lua)?;
    let (chunk, src) = vm::embedded_source("luact")
        .ok_or_else(|| mlua::Error::runtime("luact: the Lua layer is missing from the library"))?;
    lua.load(src).set_name(chunk).call("luact")
}

/// `require "luact.core"`: the native half alone (used by the facade when it is loaded from
/// source, as in this repository's specs).
#[mlua::lua_module(name = "luact_core")]
fn luact_core(lua: &mlua::Lua) -> mlua::Result<mlua::Table> {
    register_for_stalls(lua);
    vm::core_table(lua)
}

/// The stall watchdog hooks the VM of the thread that loads the module (thread 1's VM).
fn register_for_stalls(lua: &mlua::Lua) {
    // SAFETY: the closure only records the state pointer (a state of this VM, alive as long as
    // the VM: mlua keeps it).
    let _ = unsafe { lua.exec_raw::<()>((), |l| stall::set_state(l)) };
}
