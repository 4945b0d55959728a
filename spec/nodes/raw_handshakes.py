# For node_spec: handshakes that fail on a node's port (argv: host port). One connection sends
# bytes that are no frame of the node protocol; another stays silent past the node's 5 s
# handshake timeout. Prints what each saw.
import socket, sys, time

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

g = conn()
g.sendall(b"GET / HTTP/1.0\r\n\r\n" * 4)
print("garbage", ended(g))
q = conn()
t0 = time.time()
r = ended(q)
print("silent", r, "after", "5s+" if time.time() - t0 >= 4.5 else "less than 5s")
