#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""gRPC client for vmtests/scenarios/grpc.sh: unary calls multiplexed on a
few channels (threads: grpc.aio serialises the calls of a channel on one
event loop and measured about 1 ms more per call here), each channel its own
TCP connection (a channel gets its own
subchannel pool: without it gRPC shares one connection among the channels to
a target). Every call is timed from just before it is made to its return;
the answer names the predictor that served it.

Prints JSON: {"predictors": {name: {"n", "timed", "p50", "p99", "channels"}},
"calls": N, "errors": N}.
"""
import argparse
import json
import threading
import time

import grpc

METHOD = "/ferry.Model/Predict"


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--streams", type=int, default=3, help="concurrent calls per channel")
    ap.add_argument("--calls", type=int, default=100, help="calls per stream")
    ap.add_argument("--max-channels", type=int, default=16)
    a = ap.parse_args()

    lock = threading.Lock()
    lat = {}
    errors = [0]
    channels = []

    probes = {}

    def call(stub, probe=False):
        t0 = time.perf_counter()
        name = stub(b"x", timeout=10).decode()
        dt = time.perf_counter() - t0
        with lock:
            # A channel's first call also waits for its connection (TCP and
            # HTTP/2 handshakes), which the kernel does not count in a
            # request: counted, not timed.
            if probe:
                probes[name] = probes.get(name, 0) + 1
            else:
                lat.setdefault(name, []).append(dt)
        return name

    # Channels until both predictors have one (connections are split by hash).
    owners = {}
    while len(channels) < a.max_channels:
        ch = grpc.insecure_channel(
            a.target, options=[("grpc.use_local_subchannel_pool", 1)])
        stub = ch.unary_unary(METHOD)
        name = call(stub, probe=True)
        channels.append((ch, stub, name))
        owners[name] = owners.get(name, 0) + 1
        if len(channels) >= a.channels and len(owners) >= 2:
            break

    def worker(stub):
        for _ in range(a.calls):
            try:
                call(stub)
            except grpc.RpcError:
                with lock:
                    errors[0] += 1

    threads = [threading.Thread(target=worker, args=(stub,))
               for _, stub, _ in channels for _ in range(a.streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ch, _, _ in channels:
        ch.close()
    out = {"predictors": {}, "errors": errors[0],
           "calls": sum(len(v) for v in lat.values()) + sum(probes.values())}
    for name, v in lat.items():
        out["predictors"][name] = {"n": len(v) + probes.get(name, 0), "timed": len(v),
                                   "p50": pct(v, 0.5), "p99": pct(v, 0.99),
                                   "channels": owners.get(name, 0)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
