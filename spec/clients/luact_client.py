#!/usr/bin/python3
"""A minimal luact client in Python (the external protocol, PROTOCOL.md): calls actors registered
on a node through its tcp:// listener with MessagePack bodies.

    python3 luact_client.py HOST PORT            calls /svc/echo and prints the replies
    python3 luact_client.py HOST PORT --abuse    sends an oversized and a garbage frame first
    python3 luact_client.py HOST PORT --udp UDP_PORT   notify_ datagrams, then reads them back
    python3 luact_client.py HOST PORT --refs     passes back a reference it was handed, then forged ones
    python3 luact_client.py HOST PORT --edges    calls that the node must refuse with a reply
    python3 luact_client.py HOST PORT --limits HTTP_PORT   against a node with small limits
    python3 luact_client.py HOST PORT --fds      more connections than the node has descriptors
    python3 luact_client.py HOST PORT --rss HTTP_PORT PID   keep-alive clients come and go; RSS of PID

Needs the `msgpack` package (Debian: python3-msgpack).
"""
import socket
import struct
import sys

import msgpack

KIND_CALL, KIND_REPLY, KIND_NOTIFY, KIND_CLOSE = 4, 5, 6, 9
CODEC_LUACT, CODEC_MSGPACK = 0, 1


class Client:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.corr = 0
        self.buf = b""

    def send_frame(self, kind, codec, corr, body):
        # u32 len (bytes after it) | u8 kind | u8 codec | u16 thread | u32 corr | body
        self.sock.sendall(struct.pack("<IBBHI", 8 + len(body), kind, codec, 0, corr) + body)

    def read_frame(self):
        while True:
            if len(self.buf) >= 4:
                (length,) = struct.unpack("<I", self.buf[:4])
                if len(self.buf) >= 4 + length:
                    kind, codec, thread, corr = struct.unpack("<BBHI", self.buf[4:12])
                    body = self.buf[12:4 + length]
                    self.buf = self.buf[4 + length:]
                    return kind, corr, body
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def call(self, path, method, *args, full_errors=False):
        return self.call_raw(msgpack.packb([path, method, *args]), full_errors=full_errors)

    def call_raw(self, body, codec=CODEC_MSGPACK, full_errors=False):
        self.corr += 1
        self.send_frame(KIND_CALL, codec, self.corr, body)
        frame = self.read_frame()
        if frame is None:
            raise ConnectionError("closed")
        kind, corr, body = frame
        assert kind == KIND_REPLY and corr == self.corr, (kind, corr)
        if codec == CODEC_LUACT:
            return body        # LuaJIT string.buffer bytes: the caller looks for text in them
        reply = msgpack.unpackb(body, raw=False, strict_map_key=False)
        if reply[0] is False and isinstance(reply[1], dict) and not full_errors:
            reply[1] = {"error": reply[1]["error"]}
        return reply


def sbuf(v):
    """A few Lua values in LuaJIT's string.buffer encoding (strings, numbers, arrays)."""
    if isinstance(v, str):
        b = v.encode()
        assert len(b) < 0xe0 - 0x20
        return bytes([0x20 + len(b)]) + b
    if isinstance(v, (int, float)):
        return b"\x07" + struct.pack("<d", float(v))
    if isinstance(v, list):       # array from 1
        assert len(v) + 1 < 0xe0
        return bytes([0x0c, len(v) + 1]) + b"".join(sbuf(x) for x in v)
    raise TypeError(v)


def edges(host, port):
    """Calls that must each get a reply (an error that says why), on one connection."""
    c = Client(host, port)
    print("5000 args ->", c.call("/svc/echo", "echo", *range(5000), full_errors=True))
    dup = b"\x93" + msgpack.packb("/svc/echo") + msgpack.packb("echo") + b"\x82\xa1k\x01\xa1k\x02"
    print("duplicate key ->", c.call_raw(dup, full_errors=True))
    deep = 1
    for _ in range(100):
        deep = [deep]
    print("100 deep ->", c.call("/svc/echo", "echo", deep, full_errors=True))
    huge = c.call_raw(sbuf(["/svc/echo", "echo", 1e9]), codec=CODEC_LUACT)
    print("count 1e9 ->", b"too many arguments (1000000000, at most 4096)" in huge)
    # a Ref tag (metatable 1) built by hand: {m, t, e, l} with nothing to vouch for it
    forged = bytes([0x0e, 0x00, 0x09, 4]) + b"".join(sbuf(k) + sbuf(v) for k, v in [("m", 1), ("t", 1), ("e", 1), ("l", 1)])
    body = bytes([0x0c, 5]) + sbuf("/svc/caller") + sbuf("call_back") + sbuf(1) + forged
    print("forged Ref ->", b"an actor reference that no node of this cluster handed out" in c.call_raw(body, codec=CODEC_LUACT))
    print("still serving ->", c.call("/svc/echo", "hoge"))


def closed_within(sock, seconds):
    """Reads until the node closes: 'closed' (EOF, reset or a CLOSE frame), else 'open'."""
    sock.settimeout(seconds)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
            if len(data) >= 5 and data[4] == KIND_CLOSE:
                return "closed"
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "closed"


def limits(host, port, http_port):
    """Against a node started with small limits (LUACT_SPEC_LIMITS in spec/nodes/serve.lua)."""
    import time
    # slowloris: 3 bytes of a frame header, then nothing
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"\x10\x00\x00")
    print("partial frame ->", closed_within(s, 10))
    s = socket.create_connection((host, http_port), timeout=10)
    s.sendall(b"POST /svc/echo/hoge HTTP/1.1\r\nHost: x\r\n")
    print("partial http request ->", closed_within(s, 10))
    s = socket.create_connection((host, port), timeout=10)
    print("idle connection ->", closed_within(s, 10))
    # connections per listener (max_connections=8, the slowloris ones are gone)
    held = [socket.create_connection((host, port), timeout=10) for _ in range(8)]
    time.sleep(0.2)
    extra = socket.create_connection((host, port), timeout=10)
    print("connection 9 ->", closed_within(extra, 5))
    for h in held:
        h.close()
    time.sleep(0.2)
    print("after they left ->", Client(host, port).call("/svc/echo", "hoge"))
    # pipelining (max_pipelined=4): 40 calls sent at once are all answered, in order of corr
    c = Client(host, port)
    big = b"".join(struct.pack("<IBBHI", 8 + len(b), KIND_CALL, CODEC_MSGPACK, 0, i + 1) + b
                   for i, b in enumerate(msgpack.packb(["/svc/echo", "echo", i]) for i in range(40)))
    c.sock.sendall(big)
    got = sorted(c.read_frame()[1] for _ in range(40))
    print("40 pipelined calls ->", got == list(range(1, 41)))
    # a client that does not read its replies (max_buffered=262144): closed, not silently
    # short, and gracefully: the replies queued before, then a CLOSE frame saying why, then EOF
    # (a reset could cost it the replies and the reason)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    payload = "x" * 100000
    s.settimeout(10)
    replies, ending = 0, "open"
    r = Client.__new__(Client)
    r.sock, r.buf, r.corr = s, b"", 0
    try:
        for i in range(80):
            b = msgpack.packb(["/svc/echo", "echo", payload])
            s.sendall(struct.pack("<IBBHI", 8 + len(b), KIND_CALL, CODEC_MSGPACK, 0, i + 1) + b)
        time.sleep(1.0)
        while True:
            f = r.read_frame()
            if f is None:
                ending = "closed"
                break
            if f[0] == KIND_CLOSE:
                ending = "CLOSE '%s'" % f[2].decode().split(" (")[0]
                ending += ", then EOF" if r.read_frame() is None else ", then more"
                break
            replies += 1
            if replies == 80:
                break
    except (ConnectionResetError, BrokenPipeError):
        ending += ", reset"
    except socket.timeout:
        ending += ", open"
    print("unread replies ->", "all 80" if replies == 80 else "%s replies, then %s" % ("some" if replies > 0 else "no", ending))
    # HTTP requests pipelined behind a slow call: reading pauses (max_buffered), none is lost
    s = socket.create_connection((host, http_port), timeout=20)
    one = b"POST /svc/echo/hoge HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]"
    s.sendall(b"POST /svc/slow/nap HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n[0.5]" + one * 3000)
    data = b""
    while data.count(b"HTTP/1.1 200") < 3001:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    print("3001 pipelined http requests ->", data.count(b"HTTP/1.1 200"))
    st = Client(host, port).call("/svc/stats", "get")[1]
    print("stats ->", {k: st[k] > 0 for k in sorted(st)})


def fds(host, port):
    """Against a node with few file descriptors: more connections than it can accept, then a call."""
    import time
    held = []
    for _ in range(150):
        try:
            held.append(socket.create_connection((host, port), timeout=2))
        except OSError:
            break
    time.sleep(0.5)
    for h in held:
        h.close()
    time.sleep(0.5)
    print("after the flood ->", Client(host, port).call("/svc/echo", "hoge"))
    st = Client(host, port).call("/svc/stats", "get")[1]
    print("accept paused ->", st["accept_pauses"] > 0)


def rss(host, http_port, pid):
    """800 keep-alive HTTP clients come and go: the node gives back what they took."""
    import time
    def mb():
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024.0
    req = b"POST /svc/echo/hoge HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]"
    def served(s):
        s.sendall(req)
        d = b""
        while b"[100]" not in d:
            d += s.recv(4096)
    w = socket.create_connection((host, http_port), timeout=10)
    served(w)
    w.close()
    time.sleep(2.5)
    base = mb()
    for _ in range(2):
        socks = [socket.create_connection((host, http_port), timeout=10) for _ in range(800)]
        for s in socks:
            served(s)
        peak = mb()
        for s in socks:
            s.close()
        time.sleep(2.5)
    after = mb()
    print("800 keep-alive clients took memory ->", peak - base > 20)
    print("given back when they left (within 20 % of before) ->", after <= base * 1.2)
    print("# RSS %.0f MB, with the clients %.0f MB, after %.0f MB" % (base, peak, after))


def refs(host, port):
    """A reference handed out by the node goes back to it; a forged or altered one does not."""
    c = Client(host, port)
    ok, made = c.call("/svc/factory", "make", "py")
    print("made ->", ok, sorted(made["actor"]))
    print("passed back ->", c.call("/svc/caller", "get_of", made))
    altered = {"actor": dict(made["actor"], l=made["actor"]["l"] + 1)}
    print("altered ->", c.call("/svc/caller", "get_of", altered, full_errors=True))
    unsigned = {"actor": {k: v for k, v in made["actor"].items() if k != "s"}}
    print("unsigned ->", c.call("/svc/caller", "get_of", unsigned)[0])
    print("error text ->", c.call("/svc/echo", "fail", full_errors=True))


def closed_after(host, port, raw):
    """Sends raw bytes; True when the node answers with CLOSE or closes the connection."""
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(raw)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return False
    s.close()
    return len(data) < 5 or data[4] == KIND_CLOSE


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    if "--udp" in sys.argv:
        import time
        udp_port = int(sys.argv[sys.argv.index("--udp") + 1])
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for word in ["one", "two", "three"]:
            body = msgpack.packb(["/svc/notes", "note", word])
            u.sendto(struct.pack("<IBBHI", 8 + len(body), KIND_NOTIFY, CODEC_MSGPACK, 0, 0) + body, (host, udp_port))
            u.sendto(b"\x00garbage", (host, udp_port))          # dropped, counted, nothing else
            time.sleep(0.05)                                     # datagrams may reorder; keep them apart
        print("notes ->", Client(host, port).call("/svc/notes", "list"))
        return
    if "--rss" in sys.argv:
        i = sys.argv.index("--rss")
        return rss(host, int(sys.argv[i + 1]), sys.argv[i + 2])
    if "--fds" in sys.argv:
        return fds(host, port)
    if "--limits" in sys.argv:
        return limits(host, port, int(sys.argv[sys.argv.index("--limits") + 1]))
    if "--edges" in sys.argv:
        return edges(host, port)
    if "--refs" in sys.argv:
        return refs(host, port)
    if "--abuse" in sys.argv:
        # a header announcing a 1 GiB frame: refused before the node allocates anything
        oversize = struct.pack("<IBBHI", 1 << 30, KIND_CALL, CODEC_MSGPACK, 0, 1)
        print("oversize", "closed" if closed_after(host, port, oversize) else "NOT closed")
        garbage = b"\xff\xfe" * 64
        print("garbage", "closed" if closed_after(host, port, garbage) else "NOT closed")
        print("still serving ->", Client(host, port).call("/svc/echo", "hoge"))
        return
    c = Client(host, port)
    print("hoge ->", c.call("/svc/echo", "hoge"))
    print("echo ->", c.call("/svc/echo", "echo", 1, "two", None, 3.5))
    print("missing ->", c.call("/svc/none", "hoge"))


if __name__ == "__main__":
    main()
