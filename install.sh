#!/usr/bin/env bash
# Installs everything luact needs on Debian 12 (system packages, then the luact rock built from
# this checkout). Run as root, or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# luajit + headers, luarocks and busted for the Lua side; gcc for the Rust build's linker;
# erlang-nox for the side-by-side benchmarks; python3 (+ msgpack) for the benchmark report and
# the other-language client; iproute2/util-linux for the network-namespace tests; curl and
# openssl for the http:// and tls:// specs; nftables for the cluster's partition specs;
# etcd-server and wrk for the cluster benchmarks' etcd peer (bench/etcd.py; its service is not
# started where there is no systemd, and the benchmarks run their own etcds in a namespace);
# redis-server for the Redis client example (spec/examples starts its own in a namespace) and
# the benchmarks' Redis peer; nginx-light for the benchmarks' nginx + lua-nginx-module peer (the
# module itself is unpacked below, and libpcre3 is the one library it needs that nginx-light
# lacks: every peer bench/run compares with is installed here).
# faketime (libfaketime) for the nemesis soak's slowed clock (spec/helpers/nemesis.lua);
# prometheus for the spec that scrapes GET /metrics with a real server (spec/nodes/metrics_spec.lua,
# which runs its own in the namespace; the package's service starts only where there is systemd).
# tmux for the spec that drives `luact top` in a terminal (spec/nodes/cli_spec.lua); chromium,
# chromium-driver and python3-pip (for selenium, below) for the dashboard's browser spec
# (spec/nodes/dashboard_spec.lua).
$SUDO apt-get install -y -qq luajit libluajit-5.1-dev luarocks lua-busted gcc \
  erlang-nox python3 python3-msgpack iproute2 util-linux curl openssl nftables \
  etcd-server wrk redis-server nginx-light libpcre3 faketime prometheus tmux \
  chromium chromium-driver python3-pip >/dev/null
# selenium from PyPI, for whichever python3 the specs run (Debian's refuses a plain pip install
# into the system: PEP 668, hence --break-system-packages there)
if ! python3 -c 'import selenium' 2>/dev/null; then
  python3 -m pip install -q selenium 2>/dev/null || $SUDO python3 -m pip install -q --break-system-packages selenium
fi
# (nginx-light's package starts a service where there is systemd; the benchmarks run their own)

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# OpenResty's maintained LuaJIT branch beside Debian's, for spec/run's second pass (the two
# packages conflict: the .debs are unpacked into ~/.cache/luact/luajit2, not installed)
spec/install_luajit2
# lua-nginx-module with OpenResty's LuaJIT, unpacked into ~/.cache/luact/ngxlua for the same reason
bench/install_ngxlua

# Fuzzing (spec/fuzz/run, which .ci/run runs): a nightly toolchain for the sanitizer build and
# cargo-fuzz (built from crates.io, about 30 s to 2 minutes). Without them spec/fuzz/run fails.
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

$SUDO env "PATH=$PATH" luarocks make rockspec/luact-scm-1.rockspec >/dev/null
echo "luact installed: $(luajit -e 'print(require("luact").version)')"
