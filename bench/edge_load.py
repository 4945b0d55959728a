#!/usr/bin/env python3
"""The edge_load case (issue 13's target): a legitimate caller's latency and the node's memory
while 500 slowloris connections and 2000 keep-alive HTTP clients hold a node's http://
listener, and the node's memory after they leave.

Phases, one luact node (bench/edge_load_server.lua, default limits), the caller running
throughout (one keep-alive connection, one `POST /echo/back` at a time, 1 ms apart):
  control  3 s with nobody else
  attack   500 slowloris connections (a request line, then one header byte every 2 s, so the
           60 s header timeout does not close them) and 2000 keep-alive clients (one request
           each, then idle), all held 5 s after the last one connected
  after    everyone but the caller gone; 5 s later, RSS again
Prints one JSON line: {"case":"edge_load","impl":"luact", control/attack p50, p99, max (µs),
rss_base_mb, rss_peak_mb, rss_after_mb, rss_after_ratio, slowloris_open, keepalive_answered}.
Run inside a network namespace (bench/run does: unshare -n). Usage: python3 bench/edge_load.py
"""
import asyncio, json, os, resource, socket, statistics, subprocess, sys, threading, time

PORT = 18190
SLOW, KEEP = 500, 2000
REQ = b"POST /echo/back HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n[42]"


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def read_response(sock, buf):
    """Reads one HTTP response with Content-Length; returns the rest of the buffer."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(rest) < n:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed")
        rest += d
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode())
    return rest[n:]


def caller(stop, samples, errors):
    """The legitimate caller: (time, latency) of every call until stop is set."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            s.sendall(REQ)
            buf = read_response(s, buf)
            samples.append((time.time(), time.perf_counter() - t0))
        except (OSError, ConnectionError) as e:
            errors.append(str(e))
            s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
            buf = b""
        time.sleep(0.001)


async def attackers(hold, report):
    slow, keep = [], []
    for i in range(SLOW):
        r, w = await asyncio.open_connection("127.0.0.1", PORT)
        w.write(b"POST /echo/back HTTP/1.1\r\n")
        slow.append((r, w))
    answered = 0

    async def one_keepalive():
        nonlocal answered
        r, w = await asyncio.open_connection("127.0.0.1", PORT)
        w.write(REQ)
        head = await r.readuntil(b"\r\n\r\n")
        n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        await r.readexactly(n)
        if head.startswith(b"HTTP/1.1 200"):
            answered += 1
        keep.append((r, w))
    for i in range(0, KEEP, 100):
        await asyncio.gather(*[one_keepalive() for _ in range(min(100, KEEP - i))])
    report["connected"] = time.time()
    # hold: one header byte per slowloris connection every 2 s
    end = time.time() + hold
    while time.time() < end:
        for _, w in slow:
            if not w.is_closing():
                w.write(b"X")
        await asyncio.sleep(min(2, max(0, end - time.time())))
    report["peak_check"] = time.time()
    report["slowloris_open"] = sum(1 for r, _ in slow if not r.at_eof())
    report["keepalive_answered"] = answered
    report["peak_fn"]()
    for _, w in slow + keep:
        w.close()
    await asyncio.sleep(0.2)
    report["left"] = time.time()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None


def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (16384, 16384))
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    wrap = os.environ.get("EDGE_LOAD_NODE_WRAP", "").split()   # e.g. a debugger
    node = subprocess.Popen(wrap + ["luajit", "bench/edge_load_server.lua", str(PORT), "60"],
                            stdout=subprocess.PIPE, stderr=open(os.environ.get("EDGE_LOAD_NODE_LOG", os.devnull), "w"))
    try:
        for line in node.stdout:
            if line.strip() == b"ready":
                break
        else:
            raise SystemExit("the node did not start")
        stop, samples, errors = threading.Event(), [], []
        th = threading.Thread(target=caller, args=(stop, samples, errors), daemon=True)
        th.start()
        time.sleep(1.0)                  # warm-up
        rss_base = rss_mb(node.pid)
        t_control = time.time()
        time.sleep(3.0)
        t_attack = time.time()
        report = {}
        report["peak_fn"] = lambda: report.__setitem__("rss_peak", rss_mb(node.pid))
        try:
            asyncio.run(attackers(5.0, report))
        except OSError as e:
            time.sleep(0.5)
            raise SystemExit(f"the attack failed: {e}; the node: {'alive' if node.poll() is None else 'exited with ' + str(node.returncode)}")
        t_left = report["left"]
        time.sleep(5.0)
        rss_after = rss_mb(node.pid)
        stop.set()
        th.join(5)

        def lat(a, b):
            return [l * 1e6 for t, l in samples if a <= t < b]
        ctl, att = lat(t_control, t_attack), lat(t_attack, t_left)
        out = {"case": "edge_load", "impl": "luact",
               "control_p50_us": round(pct(ctl, 0.5)), "control_p99_us": round(pct(ctl, 0.99)),
               "attack_p50_us": round(pct(att, 0.5)), "attack_p99_us": round(pct(att, 0.99)),
               "attack_max_us": round(max(att)), "calls_during_attack": len(att),
               "caller_errors": len(errors),
               "rss_base_mb": round(rss_base, 1), "rss_peak_mb": round(report["rss_peak"], 1),
               "rss_after_mb": round(rss_after, 1), "rss_after_ratio": round(rss_after / rss_base, 3),
               "slowloris_open": report["slowloris_open"], "keepalive_answered": report["keepalive_answered"],
               "attack_seconds": round(t_left - t_attack, 1),
               "node_alive": node.poll() is None}
        if node.poll() is not None:
            out["node_exit"] = node.returncode
        print(json.dumps(out), flush=True)
        if errors:
            print("caller errors: " + "; ".join(errors[:3]), file=sys.stderr)
    finally:
        if os.environ.get("EDGE_LOAD_NODE_WRAP"):
            time.sleep(2)
            sys.stderr.write(node.stdout.read1(1 << 20).decode(errors="replace") if node.poll() is not None else "")
        node.kill()
        node.wait()


if __name__ == "__main__":
    main()
