#!/usr/bin/env python3
"""bench/etcd.py: the etcd peer of the cluster benchmarks (bench/cluster.py). Starts three etcd
members (Debian `etcd-server` 3.4, default settings: the WAL is fsynced before a write is
acknowledged) on 127.0.0.1-3 (client port 2379, peer port 2380), data in a fresh temp dir on the
same disk as luact's, and loads the v3 HTTP/JSON gateway of a member that is not the leader with
`wrk` (Debian `wrk`, one thread, bench/etcd_wrk.lua) -- the same place as luact's writers, which
run on a voter that is not the leader. Prints one JSON line. Opens sockets: run it inside a
network namespace with loopback up (bench/run does).

    python3 bench/etcd.py cluster_write_1|cluster_write_64|cluster_read_1|cluster_read_64
    python3 bench/etcd.py cluster_gateway_1|cluster_gateway_64
cluster_gateway_C: serializable range requests (answered by that member alone, no Raft round):
what wrk -> HTTP/JSON gateway -> etcd costs by itself, the client path under the other figures.
Env: BENCH_LOAD_SECONDS (default 5). The etcd processes are killed by pid at the end.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

CLUSTER = ",".join(f"e{i}=http://127.0.0.{i}:2380" for i in (1, 2, 3))


def post(i, path, body, timeout=2):
    req = urllib.request.Request(f"http://127.0.0.{i}:2379{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wal_fsyncs(i):
    """(count, total seconds) of member i's WAL fsyncs so far, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.{i}:2379/metrics", timeout=5) as r:
        text = r.read().decode()
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith("etcd_disk_wal_fsync_duration_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("etcd_disk_wal_fsync_duration_seconds_sum"):
            total = float(line.split()[-1])
    return count, total


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
        except OSError:
            v = None
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    case = sys.argv[1]
    _, kind, callers = case.split("_")
    callers = int(callers)
    seconds = float(os.environ.get("BENCH_LOAD_SECONDS", "5"))
    tmp = tempfile.mkdtemp(prefix="luact_etcd_bench")
    procs = []
    try:
        for i in (1, 2, 3):
            err = open(os.path.join(tmp, f"e{i}.log"), "w")
            procs.append(subprocess.Popen(
                ["etcd", "--name", f"e{i}", "--data-dir", os.path.join(tmp, f"e{i}"),
                 "--listen-client-urls", f"http://127.0.0.{i}:2379",
                 "--advertise-client-urls", f"http://127.0.0.{i}:2379",
                 "--listen-peer-urls", f"http://127.0.0.{i}:2380",
                 "--initial-advertise-peer-urls", f"http://127.0.0.{i}:2380",
                 "--initial-cluster", CLUSTER, "--initial-cluster-state", "new",
                 "--initial-cluster-token", "bench", "--logger", "zap", "--log-level", "error"],
                stdout=err, stderr=err, stdin=subprocess.DEVNULL))

        def statuses():
            st = {i: post(i, "/v3/maintenance/status", {}) for i in (1, 2, 3)}
            leaders = {s.get("leader") for s in st.values()}
            if len(leaders) != 1 or None in leaders or "0" in leaders:
                return None
            return st
        st = wait_for(statuses, 30, "an etcd leader")
        leader = next(iter(st.values()))["leader"]
        target = min(i for i, s in st.items() if s["header"]["member_id"] != leader)
        if kind in ("read", "gateway"):
            for k in range(1000):
                post(target, "/v3/kv/put", {"key": _b64(f"b/{k}"), "value": _b64(str(k))})
        mode = {"write": "put", "read": "range", "gateway": "srange"}[kind]
        url = f"http://127.0.0.{target}:2379"

        def wrk(c, d):
            out = subprocess.run(["wrk", "-t1", f"-c{c}", f"-d{d}s", "-s", "bench/etcd_wrk.lua", url,
                                  "--", mode], capture_output=True, text=True, timeout=d + 60)
            for line in out.stdout.splitlines():
                if line.startswith("wrk-result "):
                    n, secs, errors, p50, p99, ok2xx, non2xx = line.split()[1:]
                    return int(n), float(secs), int(errors), float(p50), float(p99), int(ok2xx), int(non2xx)
            raise RuntimeError("wrk printed no result: " + out.stdout[-300:] + out.stderr[-300:])
        wrk(callers, 1)                                   # warm up
        fsyncs_before = wal_fsyncs(target)
        requests, secs, errors, p50, p99, n, non2xx = wrk(callers, int(seconds))
        fsyncs_after = wal_fsyncs(target)
        after = post(target, "/v3/maintenance/status", {})
        # n and rate count only the 2xx answers (a request the gateway answered with an error
        # status is not a write); requests and non_2xx say how many there were in all
        f = {"case": case, "impl": "etcd", "n": n, "callers": callers, "seconds": secs,
             "rate": round(n / secs, 1), "requests": requests, "non_2xx": non2xx, "errors": errors,
             "leader_changed": 0 if after["leader"] == leader else 1}
        # the WAL fsyncs of the member under load (etcd_disk_wal_fsync_duration_seconds): the
        # evidence that etcd syncs as luact does, and what a sync costs on this disk now
        count, total = fsyncs_after[0] - fsyncs_before[0], fsyncs_after[1] - fsyncs_before[1]
        f["wal_fsyncs"] = count
        if kind == "write" and n:
            f["fsyncs_per_write"] = round(count / n, 3)
        if count:
            f["wal_fsync_us"] = round(total / count * 1e6, 1)
        if callers == 1:
            f["p50_us"], f["p99_us"] = p50, p99
        print(json.dumps(f), flush=True)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


def _b64(s):
    import base64
    return base64.b64encode(s.encode()).decode()


if __name__ == "__main__":
    main()
