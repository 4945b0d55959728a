#!/usr/bin/env python3
"""bench/cluster.py: the luact cluster benchmarks (issue 15). Starts real cluster members
(`luajit bench/cluster_member.lua`, two threads each) on 127.0.0.1-5 and prints one JSON line per
figure. Opens sockets: run it inside a network namespace with loopback up (bench/run does).

    python3 bench/cluster.py CASE
      cluster_write_1, cluster_write_64   luact.db.set/s, 1 or 64 tentacles on thread 1 of a
                                          voter that is not the leader (3 voters)
      cluster_read_1, cluster_read_64     luact.db.get/s (linearizable), the same way
      cluster_save_1, cluster_save_64     luact.save/s across 1000 persistent virtual actors
                                          registered on that voter (one save per call; against
                                          etcd's cluster_write_C, measured the same way)
      cluster_converge                    cold start of 3 voters + 2 followers, all spawned at
                                          once -> every member sees 5 alive and a leader
      cluster_detect_kill                 kill -9 of one member -> every survivor sees it dead
      cluster_detect_stop                 the same after SIGSTOP
      cluster_leader_loss                 kill -9 of the Raft leader while a follower writes
                                          back to back -> the first write issued after the kill
                                          is acknowledged
      cluster_loss_false_dead             5 members, 5 % of TCP packets dropped (nftables,
                                          numgen random) for 60 s: dead/suspect verdicts
Env: BENCH_TRIALS (trials of the distribution cases, default 20), BENCH_LOAD_SECONDS (length of
a throughput measurement, default 5). Every process it starts is killed by pid at the end;
every wait is bounded.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SEEDS = "127.0.0.1:7001,127.0.0.2:7002,127.0.0.3:7003"


def addr(i):
    return f"127.0.0.{i}:700{i}"


def index_of(address):
    return int(address.split(":")[0].rsplit(".", 1)[1])


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class Member:
    """One luajit cluster member; its stdout goes to a file that the driver reads."""

    def __init__(self, i, tmp, env):
        self.i, self.tmp = i, tmp
        self.ctl = os.path.join(tmp, f"ctl{i}")
        self.log = os.path.join(tmp, f"out{i}")
        self.seq = 0
        open(self.ctl, "w").close()
        datadir = os.path.join(tmp, f"n{i}") if i <= 3 else "-"
        with open(self.log, "w") as out, open(self.log + ".err", "w") as err:
            self.proc = subprocess.Popen(
                ["luajit", "bench/cluster_member.lua", addr(i), SEEDS, datadir, self.ctl],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)

    def lines(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def stderr(self):
        with open(self.log + ".err") as f:
            return f.read()

    def command(self, *words):
        self.seq += 1
        tmp = self.ctl + ".new"
        with open(tmp, "w") as f:
            f.write(" ".join(str(w) for w in (self.seq,) + words) + "\n")
        os.rename(tmp, self.ctl)

    def converged_at(self):
        for line in self.lines():
            if line.startswith("converged "):
                return float(line.split()[1])
        return None

    def leader(self):
        """The last leader this member announced (ev leader ADDR T), or None."""
        last = None
        for line in self.lines():
            w = line.split()
            if len(w) == 4 and w[0] == "ev" and w[1] == "leader":
                last = None if w[2] == "-" else w[2]
        return last

    def events(self, tp):
        out = []
        for line in self.lines():
            w = line.split()
            if len(w) == 4 and w[0] == "ev" and w[1] == tp:
                out.append((w[2], float(w[3])))
        return out

    def signal(self, sig):
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self):
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class Cluster:
    """Members 1..n (1-3 voters, 4-5 followers), started at once."""

    def __init__(self, n, life=60):
        self.tmp = tempfile.mkdtemp(prefix="luact_cluster_bench")
        env = dict(os.environ, BENCH_EXPECT=str(n), BENCH_LIFE=str(life))
        self.t0 = time.time()
        self.members = {}
        try:
            for i in range(1, n + 1):
                self.members[i] = Member(i, self.tmp, env)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for m in self.members.values():
            m.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def wait_converged(self, timeout=30):
        def all_in():
            ts = [m.converged_at() for m in self.members.values()]
            return ts if all(t is not None for t in ts) else None
        try:
            return wait_for(all_in, timeout, "convergence")
        except TimeoutError:
            raise TimeoutError("no convergence; stderr: " + " | ".join(
                m.stderr().strip()[-300:] for m in self.members.values()))

    def leader(self, among=None):
        """The leader every member in `among` agrees on, or None."""
        seen = {m.leader() for i, m in self.members.items() if among is None or i in among}
        return seen.pop() if len(seen) == 1 and None not in seen else None


def percentile(sorted_values, p):
    return sorted_values[max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 1)) - 1))]


def report(case, fields):
    print(json.dumps(dict({"case": case, "impl": "luact"}, **fields)), flush=True)


def distribution(case, samples, extra=None):
    s = sorted(samples)
    f = {"n": len(s)}
    if s:
        f.update({"p50_ms": round(statistics.median(s) * 1000, 1),
                  "p99_ms": round(percentile(s, 0.99) * 1000, 1),
                  "max_ms": round(s[-1] * 1000, 1)})
    f.update(extra or {})
    report(case, f)


def trials():
    return int(os.environ.get("BENCH_TRIALS", "20"))


# --- throughput ----------------------------------------------------------------------------
def load_case(kind, callers):
    seconds = float(os.environ.get("BENCH_LOAD_SECONDS", "5"))
    with Cluster(3) as c:
        c.wait_converged()
        leader = wait_for(lambda: c.leader(), 10, "an agreed leader")
        if os.environ.get("BENCH_ON") == "leader":
            runner = index_of(leader)
        else:
            runner = min(i for i in c.members if addr(i) != leader)
        m = c.members[runner]
        m.command(kind, callers, seconds, 1)

        def result():
            for line in m.lines():
                if line.startswith("{"):
                    return json.loads(line)
                if line.startswith("error"):
                    raise RuntimeError(line)
            return None
        r = wait_for(result, seconds + 60, "the result")
        r["leader_changed"] = 0 if c.leader() == leader else 1
        print(json.dumps(r), flush=True)


# --- cold start ----------------------------------------------------------------------------
def converge():
    samples = []
    for _ in range(trials()):
        with Cluster(5) as c:
            ts = c.wait_converged()
            samples.append(max(ts) - c.t0)
    distribution("cluster_converge", samples)


# --- failure detection ---------------------------------------------------------------------
def detect(sig, case):
    samples, misses, false_dead = [], 0, 0
    for t in range(trials()):
        victim = t % 5 + 1
        with Cluster(5) as c:
            c.wait_converged()
            time.sleep(0.5)
            t_sig = time.time()
            c.members[victim].signal(sig)
            survivors = [m for i, m in c.members.items() if i != victim]

            def all_saw():
                ts = []
                for m in survivors:
                    seen = [tt for a, tt in m.events("dead") if a == addr(victim) and tt >= t_sig]
                    if not seen:
                        return None
                    ts.append(seen[0])
                return ts
            try:
                ts = wait_for(all_saw, 20, "every survivor to see the victim dead")
                samples.append(max(ts) - t_sig)
            except TimeoutError:
                misses += 1
            for m in survivors:
                false_dead += sum(1 for a, _ in m.events("dead") if a != addr(victim))
    distribution(case, samples, {"missed": misses, "false_dead": false_dead})


# --- leader loss ---------------------------------------------------------------------------
def leader_loss():
    samples, misses, failed = [], 0, 0
    for _ in range(trials()):
        with Cluster(4) as c:
            c.wait_converged()
            writer = c.members[4]
            writer.command("stream", 40)

            def writes():
                out = []
                for line in writer.lines():
                    w = line.split()
                    if len(w) == 4 and w[0] == "w":
                        out.append((float(w[1]), float(w[2]), w[3] == "1"))
                return out
            wait_for(lambda: len(writes()) >= 100, 20, "the write stream")
            time.sleep(0.5)
            leader = wait_for(lambda: c.leader(), 10, "an agreed leader")
            t_kill = time.time()
            c.members[index_of(leader)].signal(signal.SIGKILL)

            def resumed():
                for s, e, ok in writes():
                    if s > t_kill and ok:
                        return e
                return None
            try:
                samples.append(wait_for(resumed, 20, "a write after the kill") - t_kill)
            except TimeoutError:
                misses += 1
            failed += sum(1 for _, _, ok in writes() if not ok)
    distribution("cluster_leader_loss", samples, {"missed": misses, "failed_writes": failed})


# --- false verdicts under packet loss -------------------------------------------------------
def loss_false_dead():
    """5 members; nftables drops 5 % of the TCP packets on loopback (this namespace holds only
    the cluster) for BENCH_LOSS_SECONDS (60); counts dead and suspect verdicts (no member is
    signalled, so every dead verdict is false)."""
    seconds = float(os.environ.get("BENCH_LOSS_SECONDS", "60"))
    rules = ["add table inet luact_bench_loss",
             "add chain inet luact_bench_loss input { type filter hook input priority 0 ; }",
             "add rule inet luact_bench_loss input meta l4proto tcp numgen random mod 100 < 5 counter drop"]
    with Cluster(5, life=seconds + 60) as c:
        c.wait_converged()
        time.sleep(0.5)
        try:
            for r in rules:
                subprocess.run(["nft", r], check=True)
            t0 = time.time()
            time.sleep(seconds)
            listing = subprocess.run(["nft", "list table inet luact_bench_loss"],
                                     capture_output=True, text=True).stdout
            dropped = int(listing.split("packets", 1)[1].split()[0]) if "packets" in listing else -1
        finally:
            subprocess.run(["nft", "delete table inet luact_bench_loss"], stderr=subprocess.DEVNULL)
        dead = sum(1 for m in c.members.values() for _, t in m.events("dead") if t >= t0)
        suspect = sum(1 for m in c.members.values() for _, t in m.events("suspect") if t >= t0)
        report("cluster_loss_false_dead", {"seconds": seconds, "loss_percent": 5,
                                           "false_dead": dead, "suspect_events": suspect,
                                           "dropped_packets": dropped})


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    case = sys.argv[1]
    if case.startswith("cluster_write_") or case.startswith("cluster_read_") or case.startswith("cluster_save_"):
        _, kind, callers = case.split("_")
        load_case(kind, int(callers))
    elif case == "cluster_converge":
        converge()
    elif case == "cluster_detect_kill":
        detect(signal.SIGKILL, case)
    elif case == "cluster_detect_stop":
        detect(signal.SIGSTOP, case)
    elif case == "cluster_leader_loss":
        leader_loss()
    elif case == "cluster_loss_false_dead":
        loss_false_dead()
    else:
        print(f"unknown case {case}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
