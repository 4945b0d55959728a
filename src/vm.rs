//! What makes a LuaJIT VM a luact VM: `package.preload` entries for every embedded Lua module
//! and for `luact.core` (the native half: where this library lives, so `ffi.load` can open it).
//! Thread 1's VM is the user's (`require "luact"` through mlua); a worker thread's VM is made
//! here with LuaJIT's own allocator (`WorkerVm`), which allocates Lua objects about twice as
//! fast as a state created through mlua (whose allocator goes through Rust's and counts).
use mlua::ffi::{self, lua_State};
use mlua::{Lua, Table};
use std::ffi::{c_char, c_int, CString};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_lua.rs"));
}

pub fn embedded_source(name: &str) -> Option<(&'static str, &'static str)> {
    embedded::MODULES.iter().find(|(n, _, _)| *n == name).map(|(_, chunk, src)| (*chunk, *src))
}

/// The table `require "luact.core"` returns.
pub fn core_table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("path", crate::util::library_path())?;
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

/// A worker thread's LuaJIT VM, closed when dropped. Only the thread that made it uses it.
pub struct WorkerVm {
    state: *mut lua_State,
}

impl WorkerVm {
    /// A fresh VM with the standard libraries, the embedded Lua layer as `package.preload`
    /// entries and `luact.core` in `package.loaded`.
    pub fn new() -> Result<WorkerVm, String> {
        // SAFETY: luaL_newstate has no preconditions; a null result (out of memory) is checked.
        let state = unsafe { ffi::luaL_newstate() };
        if state.is_null() {
            return Err("cannot create a Lua VM (out of memory)".into());
        }
        let vm = WorkerVm { state };
        crate::stall::set_state(state);
        // SAFETY: `state` is a live VM owned by `vm`; every call below leaves the stack balanced.
        unsafe {
            ffi::luaL_openlibs(state);
            vm.install()?;
        }
        Ok(vm)
    }

    /// Sets package.preload[name] for every embedded module and package.loaded["luact.core"].
    ///
    /// # Safety
    /// `self.state` is live and used by this thread only.
    unsafe fn install(&self) -> Result<(), String> {
        let l = self.state;
        ffi::lua_getfield(l, ffi::LUA_GLOBALSINDEX, c"package".as_ptr());
        ffi::lua_getfield(l, -1, c"preload".as_ptr());
        for (name, chunk, src) in embedded::MODULES {
            let chunk = CString::new(*chunk).map_err(|e| e.to_string())?;
            let name = CString::new(*name).map_err(|e| e.to_string())?;
            if ffi::luaL_loadbuffer(l, src.as_ptr() as *const c_char, src.len(), chunk.as_ptr()) != 0 {
                let err = pop_error(l);
                ffi::lua_settop(l, 0);
                return Err(err);
            }
            ffi::lua_setfield(l, -2, name.as_ptr()); // preload[name] = the chunk (require passes it the name)
        }
        ffi::lua_pop(l, 1);
        ffi::lua_getfield(l, -1, c"loaded".as_ptr());
        ffi::lua_newtable(l);
        let path = crate::util::library_path();
        ffi::lua_pushlstring(l, path.as_ptr() as *const c_char, path.len());
        ffi::lua_setfield(l, -2, c"path".as_ptr());
        let version = env!("CARGO_PKG_VERSION");
        ffi::lua_pushlstring(l, version.as_ptr() as *const c_char, version.len());
        ffi::lua_setfield(l, -2, c"version".as_ptr());
        ffi::lua_setfield(l, -2, c"luact.core".as_ptr());
        ffi::lua_settop(l, 0);
        Ok(())
    }

    /// Runs `require(module)[function](tid, payload)`; Err with the Lua error's text.
    pub fn call(&self, module: &str, function: &str, tid: usize, payload: &[u8]) -> Result<(), String> {
        let module = CString::new(module).map_err(|e| e.to_string())?;
        let function = CString::new(function).map_err(|e| e.to_string())?;
        let l = self.state;
        // SAFETY: `l` is live and used by this thread only; errors are caught by lua_pcall and
        // the stack is reset before returning.
        unsafe {
            ffi::lua_getfield(l, ffi::LUA_GLOBALSINDEX, c"require".as_ptr());
            ffi::lua_pushstring(l, module.as_ptr());
            let mut rc = ffi::lua_pcall(l, 1, 1, 0);
            if rc == 0 {
                ffi::lua_getfield(l, -1, function.as_ptr());
                ffi::lua_pushinteger(l, tid as ffi::lua_Integer);
                ffi::lua_pushlstring(l, payload.as_ptr() as *const c_char, payload.len());
                rc = ffi::lua_pcall(l, 2, 0, 0);
            }
            let result = if rc == 0 { Ok(()) } else { Err(pop_error(l)) };
            ffi::lua_settop(l, 0);
            result
        }
    }
}

impl Drop for WorkerVm {
    fn drop(&mut self) {
        crate::stall::set_state(std::ptr::null_mut());
        // SAFETY: the state is live, owned by this value, and nothing uses it after this.
        unsafe { ffi::lua_close(self.state) };
    }
}

/// The error message on top of the stack (popped), as text.
///
/// # Safety
/// `l` is a live VM with at least one value on its stack.
unsafe fn pop_error(l: *mut lua_State) -> String {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, -1, &mut len);
    let msg = if p.is_null() {
        "(an error that is not a string)".to_string()
    } else {
        String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned()
    };
    ffi::lua_pop(l, 1 as c_int);
    msg
}
