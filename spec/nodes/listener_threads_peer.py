# A client for listener_threads_spec: `N` HTTP calls, each on its own connection, then `N`
# connections that send half a request and wait for the node to close them (header_timeout).
# Prints "answered A" and "closed C" (bounded: every socket has a 10 s timeout).
import socket, sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
answered = 0
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    body = b'[%d]' % i
    s.sendall(b"POST /echo/back HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    if got.startswith(b"HTTP/1.1 200") and got.endswith(b"[%d]" % i):
        answered += 1
    s.close()
print("answered", answered, flush=True)

half = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
for s in half:
    s.sendall(b"POST /echo/back HTTP/1.1\r\nHost: x\r\n")
closed = 0
for s in half:
    try:
        if s.recv(4096) == b"":
            closed += 1
    except OSError:
        pass
    s.close()
print("closed", closed, flush=True)
