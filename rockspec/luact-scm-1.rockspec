-- Installs luact with `luarocks make rockspec/luact-scm-1.rockspec` from a checkout: no network
-- (the Rust crates come from cargo's registry; the Lua layer is embedded in the library).
rockspec_format = "3.0"
package = "luact"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "An actor framework for LuaJIT: N threads, each a LuaJIT VM on an io_uring loop",
  license = "Apache-2.0",
}
dependencies = { "lua ~> 5.1" }
build = {
  type = "command",
  build_command = "cargo build --release && cp target/release/libluact.so luact.so",
  -- bin/luact: the command-line tool (a shell script running LuaJIT on luact.cli, which the
  -- library embeds), so luarocks copies it as it is rather than wrapping it for lua5.1
  install = { lib = { ["luact"] = "luact.so" }, bin = { ["luact"] = "rockspec/bin/luact" } },
}
