#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Latency reference client for prom_latency: keep-alive HTTP/1.1 requests to
a VIP, timed the way the kernel times them, so the two can be compared.

A request's latency is from the kernel's transmit timestamp of its last byte
(SO_TIMESTAMPING, software, taken as the segment enters the client's network
device) to the kernel's receive timestamp (SO_TIMESTAMPNS) of the first
response segment: the client's own scheduling delays around its send and
after the response arrives (milliseconds in the tail on a busy 2-core
machine, and invisible to any load balancer) are left out. Without transmit
timestamps (a device that gives none) the send side falls back to the time
just before the bytes are handed to the kernel.
Prints JSON: {"predictors": {name: {"n", "p50", "p90", "p99"}}, "errors": N,
"tx_stamped": N (requests timed from a transmit timestamp), "connections":
{name: N} (with --predictors: connections kept per predictor)}.
"""
import argparse
import json
import socket
import struct
import selectors
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
# linux/net_tstamp.h: a software timestamp when the segment reaches the
# device, reported, with the byte's offset as its id, and nothing else.
TS_FLAGS = (1 << 1) | (1 << 4) | (1 << 7) | (1 << 11)
RECVERR = {(socket.IPPROTO_IP, 11), (socket.IPPROTO_IPV6, 25)}  # IP_RECVERR, IPV6_RECVERR
SO_EE_ORIGIN_TIMESTAMPING = 4


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
        # On TCP the byte ids count from the connection's next byte: connected first.
        self.s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, TS_FLAGS)
        self.sent_bytes = 0
        self.s.setblocking(False)
        self.buf = b""
        self.t0 = self.first = self.tx = None
        self.key = -1
        self.next_at = 0.0
        self.pred = None  # the predictor its first response named

    def send(self, req):
        self.buf, self.first, self.tx = b"", None, None
        self.t0 = time.time_ns()
        self.s.sendall(req)
        self.sent_bytes += len(req)
        self.key = (self.sent_bytes - 1) & 0xFFFFFFFF

    def drain_tx(self):
        """Reads the error queue's transmit timestamps; keeps the one for the
        request's last byte (a retransmission reports it again: the first)."""
        while True:
            try:
                _, anc, _, _ = self.s.recvmsg(1, 1024, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            ts = key = None
            for level, typ, val in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPING:
                    sec, nsec = struct.unpack("qq", val[:16])
                    ts = sec * 1_000_000_000 + nsec
                elif (level, typ) in RECVERR:
                    _, origin, _, _, _, _, data = struct.unpack("IBBBBII", val[:16])
                    if origin == SO_EE_ORIGIN_TIMESTAMPING:
                        key = data
            if ts and key == self.key and self.tx is None:
                self.tx = ts

    def on_readable(self):
        """Returns (latency_s, predictor, ok) once a whole response is in, else None."""
        self.drain_tx()
        # A read reports the receive timestamp of the last segment it took
        # from: the first byte of a response alone, so that a late read of
        # a response whose body has arrived too (servers write headers and
        # body apart) still times its first segment, as the kernel does.
        try:
            data, anc, _, _ = self.s.recvmsg(1 if self.first is None else 65536, 1024)
        except (BlockingIOError, InterruptedError):
            return None  # only the error queue was readable
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
        stamped = bool(self.tx and self.tx >= self.t0)
        t0 = self.tx if stamped else self.t0
        return (self.first - t0) / 1e9, pred, head.startswith(b"HTTP/1.1 200"), stamped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="ADDR:PORT or [ADDR6]:PORT")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--interval", type=float, default=0.01, help="pause between requests, s")
    ap.add_argument("--dump", help="also write every sample (predictor, seconds) to this file")
    ap.add_argument("--predictors", type=int, default=0,
                    help="spread the connections evenly over this many predictors: a connection "
                    "whose first response names a predictor that already holds its share is "
                    "closed and another opened (its sample still counts)")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    host = host.strip("[]")
    # One thread, non-blocking sockets: no interpreter lock between a request's
    # timestamp and its send, whatever else the machine is doing.
    body = b'{"data":{"ndarray":[[1,2,3,4]]}}'
    req = (b"POST /api/v1.0/predictions HTTP/1.1\r\nHost: ferry\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    out, errors, stamped = {}, [0], [0]
    sel = selectors.DefaultSelector()
    # The balancer places each connection by weight, so 32 connections over
    # four equal predictors leave one with two or fewer about once in 100
    # runs, and its samples too few to judge a quantile by. With --predictors
    # the client redraws (new connections) until each predictor holds its
    # share, as far as 16 draws per connection allow.
    share = a.connections // a.predictors if a.predictors else 0
    held, draws = {}, [a.connections * 16]

    def open_conn():
        c = Conn(host, int(port))
        conns.append(c)
        sel.register(c.s, selectors.EVENT_READ, c)
        c.send(req)

    conns = []
    for _ in range(a.connections):
        open_conn()
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
            lat, pred, ok, tx = r
            stamped[0] += tx
            if ok:
                out.setdefault(pred, []).append(lat)
            else:
                errors[0] += 1
            if share and c.pred is None:
                c.pred = pred
                held[pred] = held.get(pred, 0) + 1
                if held[pred] > share and draws[0] > 0 and time.time() < deadline:
                    held[pred] -= 1
                    draws[0] -= 1
                    sel.unregister(c.s)
                    conns.remove(c)
                    c.s.close()
                    open_conn()
                    continue
            c.next_at = time.time() + a.interval
            idle.append(c)
    if a.dump:
        with open(a.dump, "w") as f:
            for p, v in out.items():
                f.writelines("%s %.9f\n" % (p, x) for x in v)
    print(json.dumps({
        "errors": errors[0],
        "tx_stamped": stamped[0],
        "connections": held,
        "predictors": {p: {"n": len(v), "p50": pct(v, 0.5), "p90": pct(v, 0.9), "p99": pct(v, 0.99)}
                       for p, v in out.items()},
    }))


if __name__ == "__main__":
    main()
