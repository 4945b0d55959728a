#!/usr/bin/env bash
# A/B of the transport before and after the security work (signed references, untrusted-body
# checks, listener limits): `bench/limits_ab.sh BEFORE_CHECKOUT [ROUNDS]` runs node_call_1,
# node_call_64, listener_call_1 and listener_call_64 alternately on BEFORE_CHECKOUT (a worktree
# of an older commit, built with `cargo build --release`) and on this one, ROUNDS times (default
# 3), inside `unshare -n`, and prints one JSON line per run with "build": "before" | "after".
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
  done
done
