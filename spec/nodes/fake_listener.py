# A stand-in for another node's tcp:// listener that answers badly: the k-th CALL gets the k-th
# reply body given on the command line (hex, cycling), as a REPLY frame with the call's corr.
# Usage: python3 fake_listener.py HOST PORT HEX... ; prints "ready". Serves for 60 s at most.
import socket, struct, sys, time

host, port, bodies = sys.argv[1], int(sys.argv[2]), [bytes.fromhex(h) for h in sys.argv[3:]]
KIND_CALL, KIND_REPLY = 4, 5
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(8)
srv.settimeout(60)
print("ready", flush=True)
deadline = time.time() + 60
calls = 0
conn, _ = srv.accept()
conn.settimeout(60)
buf = b""
while time.time() < deadline:
    data = conn.recv(65536)
    if not data:
        break
    buf += data
    while len(buf) >= 12:
        (length,) = struct.unpack("<I", buf[:4])
        if len(buf) < 4 + length:
            break
        kind, codec, thread, corr = struct.unpack("<BBHI", buf[4:12])
        buf = buf[4 + length:]
        if kind != KIND_CALL:
            continue
        body = bodies[calls % len(bodies)]
        calls += 1
        conn.sendall(struct.pack("<IBBHI", 8 + len(body), KIND_REPLY, codec, 0, corr) + body)
