#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Load client for ferry's end-to-end tests and demo: talks to a VIP the way a Seldon client does.

Modes (all print one JSON summary on stdout at the end):
  --close      a new TCP connection per request (what the weighted split applies to);
               stops after --connections N requests, or after --duration S.
  --keepalive  --connections N persistent connections sharing --rate R requests/s for
               --duration S (or until SIGTERM); a failed connection is counted and reopened.
  --hold N     opens N keep-alive connections and sends one request on each every
               --hold-interval seconds until SIGTERM/SIGINT (or --duration); reports, per
               connection, the backends that answered and every failure.
  --udp        one datagram per new socket (a new flow each), --connections N of them;
               checks that every reply comes from the address it was sent to (the VIP).

Latency is client-measured: from the first byte of the request written to the first byte
of the response read. Errors are counted by kind: refused, reset, timeout, eof (closed
without an answer), http_5xx, http_other, wrong_source (UDP reply from another address).

Threads with blocking sockets: 2,000 new connections take a few seconds on 2 cores.
Standard library only.
"""
import argparse
import errno
import json
import random
import signal
import socket
import sys
import threading
import time

BODY = json.dumps({"data": {"names": ["a", "b", "c", "d"],
                            "ndarray": [[5.1, 3.5, 1.4, 0.2]]}}).encode()


class Failure(Exception):
    def __init__(self, kind, detail=""):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


def classify(exc):
    if isinstance(exc, Failure):
        return exc.kind
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in (113, 101):  # EHOSTUNREACH, ENETUNREACH
        return "unreachable"
    return "other"


def split_target(t):
    """'198.18.100.10:8000' or '[2001:db8::1]:8000' -> (host, port, family)."""
    if t.startswith("["):
        host, _, port = t[1:].partition("]:")
        return host, int(port), socket.AF_INET6
    host, _, port = t.rpartition(":")
    return host, int(port), socket.AF_INET


class Stats:
    """Counts shared by all worker threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.ok = 0
        self.errors = {}
        self.backends = {}
        self.predictors = {}
        self.latency = {}  # predictor -> [seconds]
        self.interval = None  # per-interval counters for --stats-file

    def add_ok(self, backend, predictor, lat):
        with self.lock:
            self.requests += 1
            self.ok += 1
            self.backends[backend] = self.backends.get(backend, 0) + 1
            self.predictors[predictor] = self.predictors.get(predictor, 0) + 1
            self.latency.setdefault(predictor, []).append(lat)
            if self.interval is not None:
                iv = self.interval
                iv["requests"] += 1
                iv["predictors"][predictor] = iv["predictors"].get(predictor, 0) + 1
                iv["latency"].setdefault(predictor, []).append(lat)

    def add_err(self, kind, predictor=None):
        with self.lock:
            self.requests += 1
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if predictor and kind == "http_5xx":
                self.predictors[predictor] = self.predictors.get(predictor, 0) + 1
            if self.interval is not None:
                self.interval["requests"] += 1
                self.interval["errors"] += 1

    def take_interval(self):
        with self.lock:
            iv = self.interval
            self.interval = {"requests": 0, "errors": 0, "predictors": {}, "latency": {}}
            return iv


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def lat_summary(lat):
    out = {}
    for pred, vals in lat.items():
        v = sorted(vals)
        out[pred] = {"n": len(v), "p50": pct(v, 0.50), "p90": pct(v, 0.90), "p99": pct(v, 0.99)}
    return out


class SourcePorts:
    """Distinct client ports, one per connection, so that every connection is a
    new 5-tuple. Left to the kernel, ports of closed connections come back
    (and a reused 5-tuple rightly hashes to the same backend again), which
    makes the observed split clump instead of behaving like independent
    draws: the 3-sigma share checks assume independent connections."""

    def __init__(self, first=20000, last=60999):
        # A random start: several load clients share a namespace, and ports of
        # an earlier run may still be in TIME_WAIT.
        self.lock, self.first, self.last = threading.Lock(), first, last
        self.next = random.randint(first, last)

    def bind(self, s, family):
        for _ in range(self.last - self.first + 1):
            with self.lock:
                port = self.next
                self.next = self.first if port >= self.last else port + 1
            try:
                s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
                return
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, "no free source port")


SOURCE_PORTS = SourcePorts()


class Conn:
    """One HTTP/1.1 connection to the target, reopened on demand."""

    def __init__(self, args, host, port, family):
        self.args, self.host, self.port, self.family = args, host, port, family
        self.sock = None
        self.buf = b""
        self.opened = 0

    def open(self):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(self.args.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            SOURCE_PORTS.bind(s, self.family)
            s.connect((self.host, self.port))
        except BaseException:
            s.close()
            raise
        self.sock, self.buf = s, b""
        self.opened += 1

    def close(self, abort=False):
        if self.sock is not None:
            try:
                if abort:  # RST instead of FIN: no TIME_WAIT pile-up in the client
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def _recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise Failure("eof")
        return d

    def request(self, keepalive):
        """Returns (backend, predictor, status, latency_s). Raises on transport errors."""
        if self.sock is None:
            self.open()
        hdr = ("POST /api/v1.0/predictions HTTP/1.1\r\nHost: %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n"
               "Connection: %s\r\n\r\n" % (self.host, len(BODY),
                                           "keep-alive" if keepalive else "close"))
        t0 = time.monotonic()
        self.sock.sendall(hdr.encode() + BODY)
        data = self.buf or self._recv()
        t1 = time.monotonic()
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise Failure("bad_response", lines[0])
        status = int(parts[1])
        h = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            h[k.strip().lower()] = v.strip()
        n = int(h.get("content-length", "0"))
        while len(rest) < n:
            rest += self._recv()
        self.buf = rest[n:]
        if not keepalive or h.get("connection", "").lower() == "close":
            self.close()
        return h.get("x-ferry-backend", "?"), h.get("x-ferry-predictor", "?"), status, t1 - t0


def run_one(conn, stats, keepalive):
    """One request on conn; records it; returns (backend or None, error kind or None)."""
    try:
        be, pred, status, lat = conn.request(keepalive)
    except Exception as e:  # noqa: BLE001 - every failure is a data point here
        conn.close()
        kind = classify(e)
        stats.add_err(kind)
        return None, kind
    if status >= 500:
        stats.add_err("http_5xx", pred)
        return be, "http_5xx"
    if status >= 300:
        stats.add_err("http_other", pred)
        return be, "http_other"
    stats.add_ok(be, pred, lat)
    return be, None


def mode_close(args, target, stats, stop):
    counter = [0]
    lock = threading.Lock()
    t_start = time.monotonic()
    deadline = t_start + args.duration if args.duration else None

    def worker(k):
        j = 0
        while not stop.is_set():
            with lock:
                if args.connections and counter[0] >= args.connections:
                    return
                counter[0] += 1
                seq = counter[0] - 1
            if deadline and time.monotonic() >= deadline:
                return
            if args.rate:
                due = t_start + seq / args.rate
                d = due - time.monotonic()
                if d > 0 and stop.wait(d):
                    return
            c = Conn(args, *target)
            run_one(c, stats, keepalive=False)
            c.close()
            j += 1

    threads = [threading.Thread(target=worker, args=(k,), daemon=True)
               for k in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    return {}


def mode_keepalive(args, target, stats, stop):
    n = args.connections or 10
    per_conn_rate = (args.rate / n) if args.rate else None
    deadline = time.monotonic() + args.duration if args.duration else None
    conns = [Conn(args, *target) for _ in range(n)]

    def worker(k):
        c = conns[k]
        t0 = time.monotonic() + random.random() * (1.0 / per_conn_rate if per_conn_rate else 0)
        j = 0
        while not stop.is_set():
            now = time.monotonic()
            if deadline and now >= deadline:
                break
            if per_conn_rate:
                due = t0 + j / per_conn_rate
                if due > now and stop.wait(due - now):
                    break
            run_one(c, stats, keepalive=True)
            j += 1
        c.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    return {"reopened": sum(max(0, c.opened - 1) for c in conns)}


def mode_hold(args, target, stats, stop):
    n = args.hold
    conns = [Conn(args, *target) for _ in range(n)]
    # backends: the distinct backends in the order seen; answers: who answered each
    # request (null for a failed one).
    info = [{"id": i, "backends": [], "answers": [], "requests": 0, "failures": 0,
             "errors": [], "reopened": 0} for i in range(n)]
    deadline = time.monotonic() + args.duration if args.duration else None
    ready = threading.Barrier(n + 1)

    def worker(k):
        c, inf = conns[k], info[k]
        first = True
        while not stop.is_set():
            if deadline and time.monotonic() >= deadline:
                break
            be, err = run_one(c, stats, keepalive=True)
            inf["requests"] += 1
            inf["answers"].append(None if err else be)
            if err:
                inf["failures"] += 1
                inf["errors"].append({"t": round(time.time(), 3), "kind": err})
            if be and (not inf["backends"] or inf["backends"][-1] != be):
                inf["backends"].append(be)
            if first:
                first = False
                try:
                    ready.wait(args.timeout * 2)
                except threading.BrokenBarrierError:
                    pass
            if stop.wait(args.hold_interval):
                break
        inf["reopened"] = max(0, c.opened - 1)
        c.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    try:
        ready.wait(args.timeout * 2 + 1)
    except threading.BrokenBarrierError:
        pass
    if args.ready_file:  # tells the caller every connection has made its first request
        with open(args.ready_file, "w") as f:
            f.write("%d\n" % n)
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    return {"connections": info}


def mode_udp(args, target, stats, stop):
    host, port, family = target
    counter = [0]
    lock = threading.Lock()
    want = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4][:2]

    def worker():
        while not stop.is_set():
            with lock:
                if counter[0] >= (args.connections or 100):
                    return
                counter[0] += 1
            s = socket.socket(family, socket.SOCK_DGRAM)  # new source port: a new flow
            s.settimeout(args.timeout)
            try:
                t0 = time.monotonic()
                s.sendto(b"ping %d" % random.getrandbits(32), (host, port))
                data, peer = s.recvfrom(2048)
                lat = time.monotonic() - t0
                if tuple(peer[:2]) != tuple(want):
                    stats.add_err("wrong_source")
                    continue
                f = data.decode("latin-1").split()
                stats.add_ok(f[0] if f else "?", f[1] if len(f) > 1 else "?", lat)
            except Exception as e:  # noqa: BLE001
                stats.add_err(classify(e))
            finally:
                s.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    return {}


def stats_writer(args, stats, stop):
    """Appends one JSON line per --stats-every seconds: what happened in that interval."""
    stats.take_interval()
    with open(args.stats_file, "a") as f:
        while not stop.wait(args.stats_every):
            iv = stats.take_interval()
            iv["t"] = round(time.time(), 3)
            iv["latency"] = lat_summary(iv["latency"])
            f.write(json.dumps(iv) + "\n")
            f.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="VIP:PORT or [VIP6]:PORT")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--close", action="store_true")
    g.add_argument("--keepalive", action="store_true")
    g.add_argument("--hold", type=int, metavar="N")
    g.add_argument("--udp", action="store_true")
    p.add_argument("--connections", type=int, default=0,
                   help="--close/--udp: requests in all; --keepalive: connections")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=0.0, help="seconds; 0: no limit")
    p.add_argument("--rate", type=float, default=0.0, help="requests/s in all; 0: as fast as can")
    p.add_argument("--timeout", type=float, default=3.0, help="connect and read timeout, s")
    p.add_argument("--hold-interval", type=float, default=1.0)
    p.add_argument("--ready-file", help="--hold: written once every connection has answered")
    p.add_argument("--stats-file", help="append per-interval JSON lines here")
    p.add_argument("--stats-every", type=float, default=1.0)
    args = p.parse_args()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    target = split_target(args.target)
    stats = Stats()
    if args.stats_file:
        threading.Thread(target=stats_writer, args=(args, stats, stop), daemon=True).start()

    t0 = time.monotonic()
    if args.close:
        mode, extra = "close", mode_close(args, target, stats, stop)
    elif args.keepalive:
        mode, extra = "keepalive", mode_keepalive(args, target, stats, stop)
    elif args.hold:
        mode, extra = "hold", mode_hold(args, target, stats, stop)
    else:
        mode, extra = "udp", mode_udp(args, target, stats, stop)
    stop.set()
    out = {
        "mode": mode,
        "target": args.target,
        "duration_s": round(time.monotonic() - t0, 3),
        "requests": stats.requests,
        "ok": stats.ok,
        "error_total": sum(stats.errors.values()),
        "errors": stats.errors,
        "backends": stats.backends,
        "predictors": stats.predictors,
        "latency": lat_summary(stats.latency),
    }
    out.update(extra)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
