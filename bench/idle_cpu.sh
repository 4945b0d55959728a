#!/usr/bin/env bash
# bench/idle_cpu.sh: idle CPU of a started process. Starts CMD, lets it settle, then measures
# the CPU time of its whole process tree over a window and prints one JSON line:
#   {"case":"idle_cpu","impl":IMPL,"n":1,"seconds":WINDOW,"cpu_percent":P}
# where P is percent of one core. CPU time is the run time of every thread of the process and
# its descendants from /proc/PID/task/TID/schedstat (ns), or utime+stime ticks from
# /proc/PID/stat where schedstat is missing. The process is killed by its pid at the end.
# Usage: bench/idle_cpu.sh [--impl NAME] CMD [ARGS...]   (impl defaults to "luact")
# Env: IDLE_SETTLE (s, default 1), IDLE_SECONDS (s, default 5).
set -u

impl=luact
if [ "${1:-}" = "--impl" ]; then impl=$2; shift 2; fi
if [ $# -eq 0 ]; then echo "usage: $0 [--impl NAME] CMD [ARGS...]" >&2; exit 2; fi
settle=${IDLE_SETTLE:-1}
window=${IDLE_SECONDS:-5}
tck=$(getconf CLK_TCK)

pid=
tree=
cleanup() {
    # Kill the command and whatever it started, each by its pid.
    local p
    for p in $pid $tree; do kill "$p" 2>/dev/null; done
    sleep 0.2
    for p in $pid $tree; do kill -9 "$p" 2>/dev/null; done
    [ -n "$pid" ] && wait "$pid" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$@" </dev/null >/dev/null 2>&1 &
pid=$!

# The pid and all its descendants (by walking parent pids in /proc).
descendants() {
    awk -v root="$1" '
        FNR == 1 {
            # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and parens.
            line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
            split(FILENAME, p, "/"); parent[p[3]] = f[2]
        }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (c in parent) if (!(c in keep) && (parent[c] in keep)) { keep[c] = 1; changed = 1 }
            }
            for (k in keep) print k
        }' /proc/[0-9]*/stat 2>/dev/null
}

# Total CPU nanoseconds of the given pids' threads.
cpu_ns() {
    local p t total=0 v
    for p in "$@"; do
        [ -d "/proc/$p" ] || continue
        if [ -r "/proc/$p/task" ] && ls /proc/$p/task/*/schedstat >/dev/null 2>&1; then
            for t in /proc/$p/task/*/schedstat; do
                read -r v _ < "$t" 2>/dev/null && total=$((total + v))
            done
        else
            v=$(awk -v tck="$tck" '{ l = $0; sub(/^.*\) /, "", l); split(l, f, " ");
                                     printf "%d", (f[12] + f[13]) * 1e9 / tck }' "/proc/$p/stat" 2>/dev/null)
            total=$((total + ${v:-0}))
        fi
    done
    echo "$total"
}

now_ns() { date +%s%N; }

sleep "$settle" & wait $!   # (in the background so a signal runs the trap at once)
if ! kill -0 "$pid" 2>/dev/null; then
    echo "idle_cpu: '$*' exited before it settled" >&2
    exit 1
fi
tree=$(descendants "$pid" | grep -vx "$pid" | tr '\n' ' ')
pids="$pid $tree"
c0=$(cpu_ns $pids); t0=$(now_ns)
sleep "$window" & wait $!
c1=$(cpu_ns $pids); t1=$(now_ns)
if ! kill -0 "$pid" 2>/dev/null; then
    echo "idle_cpu: '$*' exited during the measurement" >&2
    exit 1
fi
awk -v impl="$impl" -v c=$((c1 - c0)) -v t=$((t1 - t0)) 'BEGIN {
    printf "{\"case\":\"idle_cpu\",\"impl\":\"%s\",\"n\":1,\"seconds\":%.3f,\"cpu_percent\":%.4f}\n",
           impl, t / 1e9, 100 * c / t }'
