#!/usr/bin/env python3
"""bench/report.py: the report of bench/run. Reads the JSON lines of bench/out/results.jsonl
(one per case, implementation and run), takes the median of every figure over the runs, and
prints the luact/peer ratio of every case against its target. Python 3 stdlib only.

Usage: python3 bench/report.py [results.jsonl [meta.json]]
"""
import contextlib
import io
import json
import os
import statistics
import sys

# ----------------------------------------------------------------------------------------------
# The targets of issue 5: what each luact case is compared with, and the ratio it must reach.
#   (luact case, field, peer (case, impl, field) or None for an absolute bound, op, bound)
# op ">=" / "<=": ratio luact/peer (or, with no peer, the luact value itself) against the bound.
# op None: shown for information, no target.
TARGETS = [
    # call_same_thread: 64 actors called in turn (nothing LuaJIT can hoist out of the loop);
    # its Erlang shape is gen_server_call_64 (one caller, 64 gen_servers in turn). The one-actor
    # loop (call_same_thread_1actor) is mostly a plain Lua method call once LuaJIT hoisted
    # luact's per-call work out of it: information only.
    ("call_same_thread",     "rate",            ("gen_server_call_64", "erlang", "rate"), ">=", 3.0),
    ("call_same_thread",     "rate",            ("pingpong", "erlang", "rate"),         ">=", 1.0),
    ("call_same_thread_1actor", "rate",         ("gen_server_call", "erlang", "rate"),  None, None),
    ("call_cross_thread_1",  "rate",            ("channel_pingpong", "floor", "rate"),  ">=", 0.3),
    ("call_cross_thread_1",  "rate",            ("channel_pingpong_xcpu", "floor", "rate"), None, None),
    # 64 callers, one actor on the other thread; Erlang: 64 callers share one echo process
    ("call_cross_thread_64", "rate",            ("pingpong_64", "erlang", "rate"),      ">=", 1.0),
    # A method marked for a per-method duration histogram (issue 27): within 3 % of unmarked.
    ("call_cross_thread_64_marked", "rate",     ("call_cross_thread_64", "luact", "rate"), ">=", 0.97),
    ("notify_same_thread",   "rate",            ("send_oneway", "erlang", "rate"),      ">=", 1.0),
    ("notify_cross_thread",  "rate",            ("send_oneway", "erlang", "rate"),      ">=", 0.5),
    ("spawn",                "rate",            ("spawn", "erlang", "rate"),            ">=", 5.0),
    # luact's bytes_per_actor is measured beyond the actor's body table; bound 256 B (issue 28).
    ("spawn",                "bytes_per_actor", None,                                   "<=", 256),
    ("spawn",                "bytes_per_actor", ("spawn", "erlang", "bytes_per_actor"), None, None),
    ("ring",                 "rate",            ("ring", "erlang", "rate"),             None, None),
    # The skynet tree (issue 28): 1 111 111 actors spawned, told and summed, both sides alike.
    ("skynet",               "rate",            ("skynet", "erlang", "rate"),           ">=", 2.0),
    ("node_call_1",          "rate",            ("tcp_pingpong_1", "floor", "rate"),    ">=", 0.9),
    ("node_call_1",          "rate",            ("tcp_pingpong_1_xcpu", "floor", "rate"), None, None),
    ("node_call_1",          "rate",            ("dist_pingpong_1", "erlang", "rate"),  None, None),
    ("node_call_1",          "p50_us",          ("tcp_pingpong_1", "floor", "p50_us"),  None, None),
    ("node_call_1",          "p50_us",          ("dist_pingpong_1", "erlang", "p50_us"), None, None),
    ("node_call_1",          "p99_us",          ("dist_pingpong_1", "erlang", "p99_us"), None, None),
    ("node_call_64",         "rate",            ("node_call_1", "luact", "rate"),       ">=", 20.0),
    ("node_call_64",         "rate",            ("dist_pingpong_64", "erlang", "rate"), None, None),
    # Node links in mutual TLS (issue 26): against plain links, and Erlang's TLS distribution.
    ("node_call_tls_64",     "rate",            ("node_call_64", "luact", "rate"),      ">=", 0.8),
    ("node_call_tls_64",     "rate",            ("dist_tls_pingpong_64", "erlang", "rate"), ">=", 5.0),
    ("node_call_tls_64",     "cpu_us_per_call", ("node_call_64", "luact", "cpu_us_per_call"), None, None),
    ("node_call_tls_1",      "rate",            ("node_call_1", "luact", "rate"),       None, None),
    ("node_call_tls_1",      "rate",            ("dist_tls_pingpong_1", "erlang", "rate"), None, None),
    ("node_call_tls_1",      "p50_us",          ("node_call_1", "luact", "p50_us"),     None, None),
    # GET /metrics on a node with 100 000 actors (issue 27), one scrape as curl timed it.
    ("metrics_scrape",       "median_ms",       None,                                   None, None),
    ("idle_cpu",             "cpu_percent",     None,                                   "<", 1.0),
    ("idle_cpu",             "cpu_percent",     ("idle_cpu", "erlang", "cpu_percent"),  None, None),
    # The cluster (issue 15; bench/cluster.py against bench/etcd.py, run with `bench/run cluster`).
    ("cluster_write_1",      "rate",            ("cluster_write_1", "etcd", "rate"),    ">=", 1.0),
    ("cluster_write_1",      "p50_us",          ("cluster_write_1", "etcd", "p50_us"),  None, None),
    ("cluster_write_64",     "rate",            ("cluster_write_64", "etcd", "rate"),   ">=", 1.0),
    # fsyncs per acknowledged write of the member the writers run on (luact: its Raft storage's
    # count, storage_file.lua; etcd: etcd_disk_wal_fsync_duration_seconds_count of that member)
    ("cluster_write_1",      "fsyncs_per_write", ("cluster_write_1", "etcd", "fsyncs_per_write"), None, None),
    ("cluster_write_64",     "fsyncs_per_write", ("cluster_write_64", "etcd", "fsyncs_per_write"), None, None),
    ("cluster_read_1",       "rate",            ("cluster_read_1", "etcd", "rate"),     None, None),
    ("cluster_read_1",       "p50_us",          ("cluster_read_1", "etcd", "p50_us"),   None, None),
    ("cluster_read_64",      "rate",            ("cluster_read_64", "etcd", "rate"),    None, None),
    # etcd's client path alone (serializable reads through the same HTTP/JSON gateway, wrk)
    ("cluster_read_1",       "rate",            ("cluster_gateway_1", "etcd", "rate"),  None, None),
    ("cluster_read_64",      "rate",            ("cluster_gateway_64", "etcd", "rate"), None, None),
    ("cluster_converge",     "p50_ms",          None,                                   None, None),
    ("cluster_converge",     "p99_ms",          None,                                   None, None),
    ("cluster_detect_kill",  "p50_ms",          None,                                   None, None),
    ("cluster_detect_kill",  "p99_ms",          None,                                   "<=", 1000),
    ("cluster_detect_stop",  "p50_ms",          None,                                   None, None),
    ("cluster_detect_stop",  "p99_ms",          None,                                   "<=", 3000),
    ("cluster_leader_loss",  "p50_ms",          None,                                   None, None),
    ("cluster_leader_loss",  "p99_ms",          None,                                   "<=", 2000),
    ("cluster_loss_false_dead", "false_dead",   None,                                   "<=", 0),
    # Virtual actors (issue 16): bench/vactor_call.lua, bench/vactor_failover.lua.
    ("cluster_vactor_call_1",  "rate_by_name",  ("cluster_vactor_call_1", "luact", "rate_direct"),  ">=", 0.9),
    ("cluster_vactor_call_64", "rate_by_name",  ("cluster_vactor_call_64", "luact", "rate_direct"), ">=", 0.9),
    ("cluster_vactor_call_1",  "registrations_per_s", None,                             None, None),
    ("cluster_vactor_failover_kill", "median_s", None,                                  None, None),
    ("cluster_vactor_failover_kill", "p99_s",    None,                                  "<=", 1.0),
    ("cluster_vactor_failover_stop", "median_s", None,                                  None, None),
    ("cluster_vactor_failover_stop", "p99_s",    None,                                  "<=", 5.0),
    ("cluster_vactor_failover_drop", "median_s", None,                                  None, None),
    ("cluster_vactor_failover_drop", "p99_s",    None,                                  "<=", 5.0),
    ("cluster_vactor_failover_reject", "median_s", None,                                None, None),
    ("cluster_vactor_failover_reject", "p99_s",  None,                                  "<=", 5.0),
    # Durable virtual actors (issue 25): saves against etcd's writes, state across kill -9,
    # many names registered lazy (bench/vactor_durable.lua, bench/vactor_names.lua).
    ("cluster_save_1",       "p50_us",          ("cluster_write_1", "etcd", "p50_us"),  None, None),
    ("cluster_save_1",       "p50_us",          None,                                   "<=", 1000),
    ("cluster_save_64",      "rate",            ("cluster_write_64", "etcd", "rate"),   ">=", 2.0),
    # A rolling restart of all 5 members under load (issue 26): no failed call, no lost write.
    ("cluster_rolling_restart", "failed",       None,                                   "<=", 0),
    ("cluster_rolling_restart", "lost_acked",   None,                                   "<=", 0),
    ("cluster_rolling_restart", "roll_s",       None,                                   None, None),
    ("cluster_upgrade",         "failed",       None,                                   "<=", 0),
    ("cluster_upgrade",         "upgrade_s",    None,                                   None, None),
    # 10 000 reminders every 1 s across the cluster (issue 25): lateness of every beat.
    ("cluster_reminders",    "p99_ms",          None,                                   "<=", 50),
    ("cluster_reminders",    "beats_per_name_s", None,                                  None, None),
    ("cluster_vactor_durable_kill", "lost_acked", None,                                 "<=", 0),
    ("cluster_vactor_durable_kill", "median_s", None,                                   None, None),
    ("cluster_vactor_durable_kill", "p99_s",    None,                                   "<=", 1.0),
    ("cluster_vactor_names", "register_per_s",  None,                                   None, None),
    ("cluster_vactor_names", "lua_bytes_per_name_follower", None,                       "<=", 200),
    ("cluster_vactor_names", "lua_bytes_per_name_voter", None,                          None, None),
    ("cluster_vactor_names", "rss_bytes_per_name_max", None,                            None, None),
    ("cluster_vactor_names", "first_call_p50_ms", None,                                 None, None),
    ("cluster_vactor_names", "first_call_p99_ms", None,                                 "<=", 5),
    # An idle cluster member (issue 26): bench/cluster_idle.lua.
    ("cluster_idle_cpu",     "cpu_percent_median", None,                                "<=", 0.5),
    ("cluster_idle_cpu",     "cpu_percent_leader", None,                                None, None),
    ("cluster_idle_cpu",     "cpu_percent_median", ("idle_cpu", "erlang", "cpu_percent"), None, None),
    # Limits under attack (issue 13): bench/edge_load.py.
    ("edge_load",            "attack_p99_us",   None,                                   "<=", 10000),
    ("edge_load",            "attack_p99_us",   ("edge_load", "luact", "control_p99_us"), None, None),
    ("edge_load",            "rss_after_ratio", None,                                   "<=", 1.2),
    ("edge_load",            "rss_peak_mb",     None,                                   None, None),
    # User sockets and offload (issue 17): bench/sockets.sh, its peers in the same run.
    ("socket_http_hello",    "rate",            ("socket_http_hello", "nginx-lua", "rate"), ">=", 1.0),
    ("socket_http_hello",    "p99_us",          ("socket_http_hello", "nginx-lua", "p99_us"), None, None),
    ("http_listener_hello",  "rate",            ("socket_http_hello", "nginx-lua", "rate"), ">=", 0.7),
    ("http_listener_hello_all", "rate",         ("socket_http_hello", "nginx-lua", "rate"), None, None),
    ("socket_echo",          "rate",            None,                                   None, None),
    ("socket_echo",          "p99_us",          None,                                   None, None),
    ("socket_redis_p1",      "rate",            ("socket_redis_p1", "redis-benchmark", "rate"), None, None),
    ("socket_redis_p16",     "rate",            ("socket_redis_p16", "redis-benchmark", "rate"), None, None),
    ("offload_roundtrip",    "p50_us",          None,                                   "<=", 20),
    ("offload_loop_stalls_control", "gaps_over_2ms", None,                              None, None),
    ("offload_loop_stalls",  "gaps_over_2ms",   None,                                   "<=", 0),
    ("offload_loop_stalls",  "worst_gap_ms",    None,                                   None, None),
]

# How each field is printed.
UNITS = {"rate": "/s", "p50_us": "µs", "p99_us": "µs", "bytes_per_actor": "B",
         "cpu_percent": "%", "process_info_memory": "B", "p50_ms": "ms", "p99_ms": "ms",
         "max_ms": "ms", "median_s": "s", "p99_s": "s", "max_s": "s", "rate_by_name": "/s",
         "rate_direct": "/s", "registrations_per_s": "/s", "worst_gap_ms": "ms",
         "attack_p99_us": "µs", "control_p99_us": "µs", "rss_peak_mb": "MB",
         "register_per_s": "/s", "lua_bytes_per_name_follower": "B", "lua_bytes_per_name_voter": "B",
         "rss_bytes_per_name_max": "B", "cpu_percent_median": "%", "cpu_percent_leader": "%",
         "cpu_percent_max": "%", "first_call_p50_ms": "ms", "first_call_p99_ms": "ms"}


# Fields of a result line that describe the run rather than measure it.
NOT_METRICS = ("case", "impl", "n", "seconds", "run", "actors", "connections", "callers", "thread",
               "loss_percent", "contended")


def fmt(value, field):
    if value is None:
        return "n/a"
    unit = UNITS.get(field, "")
    if field == "rate":
        for div, suffix in ((1e6, " M"), (1e3, " k")):
            if value >= div:
                return f"{value / div:.3g}{suffix}/s"
        return f"{value:.3g} /s"
    if field == "cpu_percent":
        return f"{value:.3f} %"
    if field == "bytes_per_actor" or field == "process_info_memory":
        return f"{value:.0f} B"
    if abs(value) >= 1000:
        return f"{value:.0f} {unit}".strip()
    return f"{value:.3g} {unit}".strip()


def load(path):
    """Returns {(case, impl): [record, ...]} in file order; lines that are not JSON are skipped."""
    runs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if "case" in rec and "impl" in rec:
                runs.setdefault((rec["case"], rec["impl"]), []).append(rec)
    return runs


def median(runs, case, impl, field):
    """The median of `field` over the runs of (case, impl) that have it, and how many there were."""
    values = [r[field] for r in runs.get((case, impl), [])
              if isinstance(r.get(field), (int, float)) and "error" not in r]
    if not values:
        return None, 0
    return statistics.median(values), len(values)


def status(op, bound, ratio):
    if op is None:
        return "info"
    if ratio is None:
        return "n/a"
    ok = {">=": ratio >= bound, "<=": ratio <= bound, "<": ratio < bound, ">": ratio > bound}[op]
    return "met" if ok else "NOT met"


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def write_readme(readme, block, text):
    """Replaces what stands between the README's markers of `block` (<!-- bench/run BLOCK: begin -->
    and <!-- bench/run BLOCK: end -->) with `text` in a code block."""
    begin, end = f"<!-- bench/run {block}: begin -->", f"<!-- bench/run {block}: end -->"
    with open(readme, encoding="utf-8") as f:
        doc = f.read()
    i, j = doc.find(begin), doc.find(end)
    if i < 0 or j < i:
        sys.exit(f"report.py: {readme} has no '{begin}' ... '{end}' markers")
    doc = doc[:i + len(begin)] + "\n```\n" + text.rstrip("\n") + "\n```\n" + doc[j:]
    with open(readme, "w", encoding="utf-8") as f:
        f.write(doc)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    readme = block = None
    if "--readme" in args:
        k = args.index("--readme")
        readme, block = args[k + 1], args[k + 2]
        del args[k:k + 3]
    path = args[0] if len(args) > 0 else os.path.join(here, "out", "results.jsonl")
    meta_path = args[1] if len(args) > 1 else os.path.join(os.path.dirname(path), "meta.json")
    runs = load(path)
    if readme:
        # the header and the table against the peers, also into the README
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            summary(runs, meta_path)
        write_readme(readme, block, buf.getvalue())
        print(f"report.py: the table in {readme} ({block}) is regenerated")
    summary(runs, meta_path)
    details(runs)


def summary(runs, meta_path):
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        for k in ("date", "nproc", "cpu", "otp", "luajit", "commit", "runs", "jobs", "load", "contended"):
            if k in meta:
                print(f"{k + ':':8} {meta[k]}")
        print()

    rows = []
    for case, field, peer, op, bound in TARGETS:
        # a case that was not run at all (the cluster cases are optional) has no row
        if (case, "luact") not in runs and (peer is None or (peer[0], peer[1]) not in runs):
            continue
        lv, ln = median(runs, case, "luact", field)
        if peer is None:
            peer_name, pv, ratio = "(absolute)", None, lv
            target = f"{op} {fmt(bound, field)}" if op else "-"
        else:
            pcase, pimpl, pfield = peer
            pv, _ = median(runs, pcase, pimpl, pfield)
            peer_name = f"{pimpl} {pcase}" + ("" if pfield == field else f".{pfield}")
            ratio = lv / pv if lv is not None and pv else None
            target = f"{op} {bound:g}x" if op else "-"
        shown_ratio = "n/a" if ratio is None else (f"{ratio:.3g}x" if peer else fmt(ratio, field))
        rows.append([case, field, fmt(lv, field) + (f" ({ln})" if ln else ""), peer_name,
                     "" if peer is None else fmt(pv, peer[2]), shown_ratio, target,
                     status(op, bound, ratio)])
    print("luact against its peers (medians; (k) = number of luact runs)")
    table(rows, ["case", "metric", "luact", "peer", "peer value", "ratio", "target", "status"])


def details(runs):
    # Every figure measured, for the record.
    print()
    print("all figures (median over runs, [min .. max])")
    all_rows = []
    for (case, impl), recs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        errors = [r["error"] for r in recs if "error" in r]
        fields = []
        for r in recs:
            for k, v in r.items():
                if k not in NOT_METRICS and isinstance(v, (int, float)) \
                        and k not in fields:
                    fields.append(k)
        for k in fields:
            vals = [r[k] for r in recs if isinstance(r.get(k), (int, float)) and "error" not in r]
            if not vals:
                continue
            all_rows.append([impl, case, k, fmt(statistics.median(vals), k),
                             f"[{fmt(min(vals), k)} .. {fmt(max(vals), k)}]", str(len(vals))])
        if errors and not fields:
            all_rows.append([impl, case, "-", "n/a", errors[-1][:90], "0"])
    table(all_rows, ["impl", "case", "metric", "median", "range", "runs"])


if __name__ == "__main__":
    main()
