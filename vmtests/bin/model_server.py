#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A stand-in for one Seldon Core model pod, for ferry's end-to-end tests and demo.

Answers Seldon's REST protocol (the paths a Seldon executor serves) over HTTP/1.1
keep-alive, says which backend and predictor answered (X-Ferry-Backend header and
meta.requestPath), and can be made slow (--delay-ms) or flaky (--error-rate) so
that latency and error metrics have something to show. With --udp it is a UDP echo
server that answers every datagram with its name, for the UDP VIP scenario.

Standard library only: it runs inside bare network namespaces.
"""
import argparse
import os
import json
import math
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", default="0.0.0.0", help="address to listen on (IPv4 or IPv6)")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--name", required=True, help="backend name, returned in every answer")
    p.add_argument("--predictor", default="main", help="predictor this backend belongs to")
    p.add_argument("--delay-ms", type=float, default=0.0, help="service time per request")
    p.add_argument("--delay-sigma", type=float, default=0.0,
                   help="service times drawn from a log-normal distribution with this shape "
                        "and --delay-ms as its median (0: always --delay-ms)")
    p.add_argument("--error-rate", type=float, default=0.0,
                   help="fraction of predictions answered with HTTP 500")
    p.add_argument("--udp", action="store_true", help="UDP echo mode instead of HTTP")
    p.add_argument("--error-status", type=int, default=500,
                   help="the status of an injected error (e.g. 503)")
    p.add_argument("--control", metavar="FILE",
                   help="JSON {\"delay_ms\": N, \"error_rate\": F}, re-read when it changes: "
                        "make a running backend slow or flaky")
    return p.parse_args()


def service_time(delay_ms, sigma):
    """Seconds: delay_ms, or with sigma > 0 a log-normal draw with median
    delay_ms, as real models' service times spread."""
    if sigma > 0:
        return random.lognormvariate(math.log(delay_ms / 1000.0), sigma)
    return delay_ms / 1000.0


def reload_control(cfg):
    """--control: takes delay_ms and error_rate from the file when its mtime changes."""
    if not cfg.control:
        return
    try:
        mtime = os.stat(cfg.control).st_mtime_ns
    except OSError:
        return
    if mtime == getattr(cfg, "control_mtime", None):
        return
    cfg.control_mtime = mtime
    try:
        with open(cfg.control) as f:
            c = json.load(f)
    except (OSError, ValueError):
        return
    cfg.delay_ms = float(c.get("delay_ms", cfg.delay_ms))
    cfg.error_rate = float(c.get("error_rate", cfg.error_rate))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: connections live across requests
    server_version = "ferry-model-server/1"
    cfg = None

    def log_message(self, fmt, *args):  # one line per request would drown the test logs
        pass

    def _send(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Ferry-Backend", self.cfg.name)
        self.send_header("X-Ferry-Predictor", self.cfg.predictor)
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_GET(self):
        if self.path in ("/health/ping", "/ping"):
            self._send(200, "pong", "text/plain")
        elif self.path in ("/health/status", "/ready", "/live"):
            self._send(200, json.dumps({"status": "ok", "backend": self.cfg.name}))
        else:
            self._send(404, json.dumps({"status": {"code": 404, "info": "no such path",
                                                   "status": "FAILURE"}}))

    def do_POST(self):
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        if path not in ("/api/v1.0/predictions", "/api/v0.1/predictions"):
            self._send(404, json.dumps({"status": {"code": 404, "info": "no such path",
                                                   "status": "FAILURE"}}))
            return
        reload_control(self.cfg)
        if self.cfg.delay_ms > 0:
            time.sleep(service_time(self.cfg.delay_ms, self.cfg.delay_sigma))
        if self.cfg.error_rate > 0 and random.random() < self.cfg.error_rate:
            code = self.cfg.error_status
            self._send(code, json.dumps({"status": {"code": code, "info": "injected error",
                                                   "reason": "MICROSERVICE_INTERNAL_ERROR",
                                                   "status": "FAILURE"},
                                        "meta": {"requestPath": {self.cfg.predictor:
                                                                 self.cfg.name}}}))
            return
        try:
            req = json.loads(raw or b"{}")
            rows = req.get("data", {}).get("ndarray", [[0.0]])
        except (ValueError, AttributeError):
            self._send(400, json.dumps({"status": {"code": 400, "info": "body is not JSON",
                                                   "status": "FAILURE"}}))
            return
        # A fake classifier: one probability row per input row, stable per backend.
        out = [[0.9, 0.1] if self.cfg.predictor == "main" else [0.8, 0.2] for _ in rows]
        resp = {
            "data": {"names": ["t:0", "t:1"], "ndarray": out},
            "meta": {
                "puid": "%016x" % random.getrandbits(64),
                "requestPath": {self.cfg.predictor: self.cfg.name},
                "tags": {"backend": self.cfg.name, "predictor": self.cfg.predictor},
            },
        }
        self._send(200, json.dumps(resp))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096  # the load client opens thousands of connections at once
    allow_reuse_address = True


def serve_udp(cfg):
    fam = socket.AF_INET6 if ":" in cfg.addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((cfg.addr, cfg.port))
    reply = ("%s %s" % (cfg.name, cfg.predictor)).encode()
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(reply + b" " + data[:64], peer)


def main():
    cfg = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if cfg.udp:
        serve_udp(cfg)
        return
    Handler.cfg = cfg
    Server.address_family = socket.AF_INET6 if ":" in cfg.addr else socket.AF_INET
    srv = Server((cfg.addr, cfg.port), Handler)
    print("model_server %s (%s) on %s:%d" % (cfg.name, cfg.predictor, cfg.addr, cfg.port),
          file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
