#!/usr/bin/env python3
"""Test peer for spec/sockets, in another process: `echo HOST PORT CLIENTS LINES` runs CLIENTS
concurrent connections that each send LINES lines and check every echo; `halfclose HOST PORT`
sends a request, shuts its write side and prints what comes back; `hold HOST PORT` listens and
never accepts (for 30 s). Bounded: every socket has a 10 s timeout."""
import socket, sys, threading

def echo(host, port, clients, lines):
    errors = []
    def one(i):
        try:
            s = socket.create_connection((host, port), timeout=10)
            f = s.makefile("rwb")
            for j in range(lines):
                msg = f"client {i} line {j}\n".encode()
                f.write(msg); f.flush()
                back = f.readline()
                if back != b"echo: " + msg:
                    errors.append(f"client {i}: sent {msg!r} got {back!r}")
                    break
            s.close()
        except Exception as e:
            errors.append(f"client {i}: {e}")
    ts = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("errors", len(errors), *errors[:3])

def halfclose(host, port):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"first part, " + b"second part")
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        b = s.recv(65536)
        if not b: break
        out += b
    print("got", out.decode())

def hold(host, port):
    """Listens with the smallest backlog and never accepts: later connects time out."""
    s = socket.socket()
    s.bind((host, port))
    s.listen(0)
    print("listening", s.getsockname()[1], flush=True)
    import time
    time.sleep(30)

if __name__ == "__main__":
    if sys.argv[1] == "hold":
        hold(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "echo":
        echo(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        halfclose(sys.argv[2], int(sys.argv[3]))
