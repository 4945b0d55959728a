#!/usr/bin/python3
"""A minimal luact client in Python (the external protocol, PROTOCOL.md): calls actors registered
on a node through its tcp:// listener with MessagePack bodies.

    python3 luact_client.py HOST PORT            calls /svc/echo and prints the replies
    python3 luact_client.py HOST PORT --abuse    sends an oversized and a garbage frame first
    python3 luact_client.py HOST PORT --udp UDP_PORT   notify_ datagrams, then reads them back

Needs the `msgpack` package (Debian: python3-msgpack).
"""
import socket
import struct
import sys

import msgpack

KIND_CALL, KIND_REPLY, KIND_NOTIFY, KIND_CLOSE = 4, 5, 6, 9
CODEC_MSGPACK = 1


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

    def call(self, path, method, *args):
        self.corr += 1
        self.send_frame(KIND_CALL, CODEC_MSGPACK, self.corr, msgpack.packb([path, method, *args]))
        frame = self.read_frame()
        if frame is None:
            raise ConnectionError("closed")
        kind, corr, body = frame
        assert kind == KIND_REPLY and corr == self.corr, (kind, corr)
        reply = msgpack.unpackb(body, raw=False)
        if reply[0] is False and isinstance(reply[1], dict):
            reply[1] = {"error": reply[1]["error"]}
        return reply


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
