# For node_spec: handshakes that fail on a node's port (argv: host port). Connections that send
# bytes that are no frame of the node protocol, a HELLO of protocol version 1, a HELLO of
# another cluster, and one that stays silent past the node's 5 s handshake timeout. Prints what
# each saw.
import os, socket, struct, sys, time

host, port = sys.argv[1], int(sys.argv[2])

def conn():
    return socket.create_connection((host, port), timeout=10)

def ended(s):
    try:
        while s.recv(4096):
            pass
        return "closed"
    except OSError as e:
        return "closed (%s)" % e.__class__.__name__

def hello(version, cluster):
    # PROTOCOL.md: u16 version, u8 role (1 dialer), u64 node_id, 32-byte nonce, cluster, addr
    addr = b"127.0.0.9:7999"
    body = struct.pack("<HBQ", version, 1, (0x7f000009 << 16) | 7999) + os.urandom(32)
    body += bytes([len(cluster)]) + cluster + bytes([len(addr)]) + addr
    return struct.pack("<IBBHI", 8 + len(body), 1, 0, 0, 0) + body

g = conn()
g.sendall(b"GET / HTTP/1.0\r\n\r\n" * 4)
print("garbage", ended(g))
v = conn()
v.sendall(hello(1, b"luact"))
print("version 1", ended(v))
w = conn()
w.sendall(hello(2, b"other"))
print("other cluster", ended(w))
q = conn()
t0 = time.time()
r = ended(q)
print("silent", r, "after", "5s+" if time.time() - t0 >= 4.5 else "less than 5s")
