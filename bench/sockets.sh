#!/usr/bin/env bash
# bench/sockets.sh: the benchmarks of issue 17 (luact.socket and luact.offload), one JSON line
# per figure on stdout. Runs itself inside a fresh network namespace (unshare -n, loopback
# only, 127.0.0.1); every process it starts is killed by pid on exit.
#   socket_http_hello  keep-alive HTTP "hello" on luact.socket (2 threads) under wrk -t2 -c64,
#                      beside nginx + lua-nginx-module (2 workers, content_by_lua_block). Equal
#                      work: both parse the request line and headers and route on the path
#                      ("/" says hello, any other path is a 404: checked before measuring)
#   http_listener_hello  the same through luact's http:// listener calling an actor (1 thread)
#   http_listener_hello_all  the same, 2 threads (threads = "all"), the actor on thread 1
#   socket_echo        TCP echo of 32-byte lines, 64 connections from another luact process
#   socket_redis_p1/16 PING round trips through spec/examples/redis.lua, 64 connections,
#                      beside redis-benchmark with the same connections and pipelining
#   offload_*          luact.offload round trip and loop stalls (no sockets)
# lua-nginx-module is NOT installed system-wide: OpenResty's LuaJIT (libluajit2), which it is
# meant to run on, conflicts with the luajit package luact needs. install.sh installs nginx-light
# and runs bench/install_ngxlua, which unpacks the module's .debs into ~/.cache/luact/ngxlua
# ($LUACT_NGXLUA); this script runs it too when they are not there yet.
# Env: BENCH_SECONDS (per measurement, default 5).
set -u
self=$(realpath "$0")
cd "$(dirname "$self")/.."
if [ "${1:-}" != "__inside" ]; then
  cargo build --release 2>&1 | tail -1 >&2
  mkdir -p target/lua bench/out && cp --remove-destination target/release/libluact.so target/lua/luact.so
  bench/install_ngxlua >/dev/null || echo "bench/sockets.sh: cannot unpack lua-nginx-module (bench/install_ngxlua)" >&2
  exec unshare -n "$self" __inside
fi
ip link set lo up
S=${BENCH_SECONDS:-5}
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
wait_line() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
json() { printf '{"case":"%s","impl":"%s",%s}\n' "$1" "$2" "$3"; }
# wrk's summary as JSON fields: rate (requests/s), p99_us (wrk prints 812.00us, 1.02ms or 1.20s),
# non_2xx (responses that were not 2xx or 3xx).
wrk_json() { awk '/Requests\/sec/ {r=$2} /^ +99%/ {p=$2} /Non-2xx/ {e=$NF}
  END { u = p + 0; if (p ~ /ms$/) u *= 1000; else if (p ~ /[0-9]s$/) u *= 1000000; else if (p ~ /m$/) u *= 60000000
        printf "\"rate\":%s,\"p99_us\":%.0f,\"non_2xx\":%d", r, u, e }'; }
wrk_rate() { wrk -t2 -c64 -d"${S}s" --latency "$1" 2>&1 | wrk_json; }
wrk_rate_script() { wrk -t2 -c64 -d"${S}s" --latency -s "$1" "$2" 2>&1 | wrk_json; }
tmp=$(mktemp -d)
# both HTTP servers route on the path: "/" says hello, another path is a 404
routes_ok() { curl -s "$1/" | grep -q hello && [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/nope")" = 404 ]; }

# --- HTTP hello: luact.socket ---
luajit bench/socket_http_hello.lua 18080 $((S + 5)) 2 >"$tmp/luact_http.log" 2>&1 & pids+=($!)
if wait_line "$tmp/luact_http.log" ready; then
  if routes_ok http://127.0.0.1:18080; then
    json socket_http_hello luact "$(wrk_rate http://127.0.0.1:18080/)"
  else json socket_http_hello luact '"error":"the luact server does not route on the path"'; fi
else json socket_http_hello luact '"error":"server did not start"'; fi
kill "${pids[-1]}" 2>/dev/null

# --- HTTP hello: nginx + lua-nginx-module ---
root=${LUACT_NGXLUA:-$HOME/.cache/luact/ngxlua}
if [ -n "$root" ] && [ -f "$root/usr/lib/nginx/modules/ngx_http_lua_module.so" ] && command -v nginx >/dev/null; then
  mkdir -p "$tmp/ngx/logs"
  cat >"$tmp/ngx/nginx.conf" <<CONF
load_module $root/usr/lib/nginx/modules/ndk_http_module.so;
load_module $root/usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 2;
daemon off;
pid $tmp/ngx/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  lua_package_path "$root/usr/share/lua/5.1/?.lua;;";
  server {
    listen 127.0.0.1:18081;
    location = / { default_type text/plain; content_by_lua_block { ngx.say("hello") } }
    location / { return 404; }
  }
}
CONF
  LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu" nginx -p "$tmp/ngx" -c "$tmp/ngx/nginx.conf" -e stderr >"$tmp/ngx.log" 2>&1 & pids+=($!)
  sleep 1
  if routes_ok http://127.0.0.1:18081; then
    json socket_http_hello nginx-lua "$(wrk_rate http://127.0.0.1:18081/)"
  else json socket_http_hello nginx-lua "\"error\":\"nginx did not serve: $(head -c 200 "$tmp/ngx.log" | tr '\n"' ' _')\""; fi
  kill "${pids[-1]}" 2>/dev/null
else
  json socket_http_hello nginx-lua '"error":"nginx or lua-nginx-module missing"'
fi

# --- HTTP hello: luact's own http:// listener calling an actor (one thread; two) ---
for n in 1 2; do
  c=http_listener_hello; [ "$n" = 2 ] && c=http_listener_hello_all
  luajit bench/http_listener_hello.lua 18083 $((S + 5)) $n >"$tmp/listener_http.log" 2>&1 & pids+=($!)
  if wait_line "$tmp/listener_http.log" ready; then
    json $c luact "$(wrk_rate_script bench/http_listener_hello.wrk.lua http://127.0.0.1:18083/)"
  else json $c luact '"error":"server did not start"'; fi
  kill "${pids[-1]}" 2>/dev/null; wait "${pids[-1]}" 2>/dev/null
done

# --- TCP echo ---
luajit bench/socket_echo.lua server 18082 $((S + 5)) >"$tmp/echo.log" 2>&1 & pids+=($!)
if wait_line "$tmp/echo.log" ready; then luajit bench/socket_echo.lua client 18082 "$S" 64; fi
kill "${pids[-1]}" 2>/dev/null

# --- Redis ---
if command -v redis-server >/dev/null; then
  redis-server --bind 127.0.0.1 --port 16379 --save '' --appendonly no >"$tmp/redis.log" 2>&1 & pids+=($!)
  if wait_line "$tmp/redis.log" "Ready to accept"; then
    for P in 1 16; do
      luajit bench/socket_redis.lua 16379 "$S" 64 $P
      rb=$(redis-benchmark -p 16379 -c 64 -P $P -n $((P == 1 ? 200000 : 2000000)) -t ping --csv 2>/dev/null | awk -F'"' '/PING_MBULK/ {print $4}')
      json "socket_redis_p$P" redis-benchmark "\"conns\":64,\"rate\":${rb:-null}"
    done
  fi
  kill "${pids[-1]}" 2>/dev/null
fi

# --- offload ---
luajit bench/offload_roundtrip.lua
rm -rf "$tmp"
