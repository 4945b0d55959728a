#!/usr/bin/env python3
"""A man in the middle for spec/nodes/node_tls_spec.lua: relays TCP connections and, once armed,
flips one bit of what a client sends, after the link is established.

    flip_proxy.py LISTEN_IP:PORT TARGET_IP:PORT SOURCE_IP ARM_FILE MARKER

Accepts on LISTEN (the spec redirects a node's dials there with nftables), connects to TARGET from
SOURCE_IP (so its own connection is not redirected) and relays both ways. When ARM_FILE exists,
the next chunk of at least 1000 bytes going client -> server gets the middle byte of it XORed with
0x01, once (then ARM_FILE is removed). Prints one line per event, flushed:
    accepted N                 a client connected (N-th connection)
    first N XX XX XX           the first bytes client -> server on connection N, in hex
    flipped N OFFSET LEN       the flip: connection N, stream offset of the byte, chunk length
    marker N                   MARKER (text) was seen in clear in client -> server bytes
    closed N DIRECTION         one direction of connection N ended
Stops by itself after 120 s. Python's standard library only.
"""
import os
import socket
import sys
import threading
import time

listen_ip, listen_port = sys.argv[1].rsplit(":", 1)
target_ip, target_port = sys.argv[2].rsplit(":", 1)
source_ip, arm_file, marker = sys.argv[3], sys.argv[4], sys.argv[5].encode()
lock = threading.Lock()


def say(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def relay(n, src, dst, upstream):
    """Copies src to dst; the client -> server direction (upstream) may flip a byte."""
    offset = 0
    seen_marker = False
    tail = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if upstream:
                if offset == 0:
                    say("first %d %s" % (n, " ".join("%02x" % b for b in data[:3])))
                window = tail + data
                if not seen_marker and marker in window:
                    seen_marker = True
                    say("marker %d" % n)
                tail = window[-len(marker):]
                if len(data) >= 1000 and os.path.exists(arm_file):
                    try:
                        os.remove(arm_file)  # once
                        i = len(data) // 2
                        data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
                        say("flipped %d %d %d" % (n, offset + i, len(data)))
                    except FileNotFoundError:
                        pass
            offset += len(data)
            dst.sendall(data)
    except OSError:
        pass
    say("closed %d %s" % (n, "up" if upstream else "down"))
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((listen_ip, int(listen_port)))
    lsock.listen(16)
    lsock.settimeout(0.5)
    say("listening")
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline:
        try:
            client, _ = lsock.accept()
        except socket.timeout:
            continue
        n += 1
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind((source_ip, 0))
        try:
            server.connect((target_ip, int(target_port)))
        except OSError as e:
            say("connect failed %d %s" % (n, e))
            client.close()
            continue
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        say("accepted %d" % n)
        threading.Thread(target=relay, args=(n, client, server, True), daemon=True).start()
        threading.Thread(target=relay, args=(n, server, client, False), daemon=True).start()


main()
