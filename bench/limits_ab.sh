#!/usr/bin/env bash
# A/B of the transport against an older commit (first made for the security work: signed
# references, untrusted-body checks, listener limits; since used for the move onto conn.rs):
# `bench/limits_ab.sh BEFORE_CHECKOUT [ROUNDS]` runs node_call_1, node_call_64, listener_call_1,
# listener_call_64 and, when wrk is installed, http_listener_hello (wrk -t2 -c64 for 5 s against
# bench/http_listener_hello.lua, 1 thread) alternately on BEFORE_CHECKOUT (a worktree of an
# older commit, built with `cargo build --release`) and on this one, ROUNDS times (default 3),
# inside `unshare -n`, and prints one JSON line per run with "build": "before" | "after".
set -eu
cd "$(dirname "$0")/.."
before=$(cd "$1" && pwd); rounds=${2:-3}
after=$(pwd)
for dir in "$before" "$after"; do
  mkdir -p "$dir/target/lua" && cp --remove-destination "$dir/target/release/libluact.so" "$dir/target/lua/luact.so"
done
[ -e "$before/bench/listener_call.lua" ] || cp "$after/bench/listener_call.lua" "$before/bench/listener_call.lua"
for r in $(seq "$rounds"); do
  for build in before after; do
    dir=$before; [ "$build" = after ] && dir=$after
    for c in "node_call.lua 1" "node_call.lua 64" "listener_call.lua 1" "listener_call.lua 64"; do
      (cd "$dir" && unshare -n sh -c 'ip link set lo up && exec luajit bench/'"${c% *}"' '"${c#* }") \
        | sed "s/^{/{\"build\": \"$build\", \"round\": $r, /"
    done
    if command -v wrk >/dev/null && [ -e "$dir/bench/http_listener_hello.lua" ]; then
      rate=$(cd "$dir" && unshare -n sh -c 'ip link set lo up; log=$(mktemp)
        luajit bench/http_listener_hello.lua 18083 12 1 >"$log" 2>&1 & p=$!
        for _ in $(seq 50); do grep -q ready "$log" && break; sleep 0.1; done
        wrk -t2 -c64 -d5s -s bench/http_listener_hello.wrk.lua http://127.0.0.1:18083/ | awk "/Requests\/sec/ {print \$2}"
        kill $p; wait $p 2>/dev/null; rm -f "$log"')
      echo "{\"build\": \"$build\", \"round\": $r, \"case\":\"http_listener_hello\",\"impl\":\"luact\",\"rate\":${rate:-0}}"
    fi
  done
done
