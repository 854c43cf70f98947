#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Latency reference client for prom_latency: keep-alive HTTP/1.1 requests to
a VIP, timed the way the kernel times them, so the two can be compared.

A request's latency is from just before its bytes are handed to the kernel
to the kernel's receive timestamp (SO_TIMESTAMPNS) of the first response
segment: the client's own scheduling delay after the response arrives (large
on a busy 2-core machine, and invisible to any load balancer) is left out.
Prints JSON: {"predictors": {name: {"n", "p50", "p90", "p99"}}, "errors": N}.
"""
import argparse
import json
import socket
import struct
import selectors
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else None


class Conn:
    """One keep-alive connection: a request in flight at a time."""

    def __init__(self, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.settimeout(5)
        self.s.connect((host, port))
        self.s.setblocking(False)
        self.buf = b""
        self.t0 = self.first = None
        self.next_at = 0.0

    def send(self, req):
        self.buf, self.first = b"", None
        self.t0 = time.time_ns()
        self.s.sendall(req)

    def on_readable(self):
        """Returns (latency_s, predictor, ok) once a whole response is in, else None."""
        data, anc, _, _ = self.s.recvmsg(65536, 1024)
        if not data:
            raise ConnectionError("closed by peer")
        if self.first is None:
            self.first = time.time_ns()
            for level, typ, val in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", val[:16])
                    self.first = sec * 1_000_000_000 + nsec
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return None
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        hdrs = {}
        for ln in head.split(b"\r\n")[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower()] = v.strip()
        if len(rest) < int(hdrs.get(b"content-length", b"0")):
            return None
        pred = hdrs.get(b"x-ferry-predictor", b"?").decode()
        return (self.first - self.t0) / 1e9, pred, head.startswith(b"HTTP/1.1 200")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="ADDR:PORT or [ADDR6]:PORT")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--interval", type=float, default=0.01, help="pause between requests, s")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    host = host.strip("[]")
    # One thread, non-blocking sockets: no interpreter lock between a request's
    # timestamp and its send, whatever else the machine is doing.
    body = b'{"data":{"ndarray":[[1,2,3,4]]}}'
    req = (b"POST /api/v1.0/predictions HTTP/1.1\r\nHost: ferry\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    out, errors = {}, [0]
    sel = selectors.DefaultSelector()
    conns = [Conn(host, int(port)) for _ in range(a.connections)]
    for c in conns:
        sel.register(c.s, selectors.EVENT_READ, c)
        c.send(req)
    deadline = time.time() + a.duration
    idle = []
    while conns and (time.time() < deadline or len(idle) < len(conns)):
        now = time.time()
        for c in [c for c in idle if c.next_at <= now and now < deadline]:
            idle.remove(c)
            c.send(req)
        for key, _ in sel.select(timeout=0.005):
            c = key.data
            try:
                r = c.on_readable()
            except (ConnectionError, OSError):
                errors[0] += 1
                sel.unregister(c.s)
                conns.remove(c)
                continue
            if r is None:
                continue
            lat, pred, ok = r
            if ok:
                out.setdefault(pred, []).append(lat)
            else:
                errors[0] += 1
            c.next_at = time.time() + a.interval
            idle.append(c)
    print(json.dumps({
        "errors": errors[0],
        "predictors": {p: {"n": len(v), "p50": pct(v, 0.5), "p90": pct(v, 0.9), "p99": pct(v, 0.99)}
                       for p, v in out.items()},
    }))


if __name__ == "__main__":
    main()
