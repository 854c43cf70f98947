#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""gRPC client for vmtests/scenarios/grpc.sh: unary calls multiplexed on a
few channels (grpc.aio: one thread, no GIL contention in the timing), each
channel its own TCP connection (a channel gets its own
subchannel pool: without it gRPC shares one connection among the channels to
a target). Every call is timed from just before it is made to its return;
the answer names the predictor that served it.

Prints JSON: {"predictors": {name: {"n", "p50", "p99", "channels"}},
"calls": N, "errors": N}.
"""
import argparse
import asyncio
import json
import time

import grpc

METHOD = "/ferry.Model/Predict"


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else None


async def run(a):
    lat = {}
    errors = 0
    channels = []
    owners = {}

    async def call(stub):
        t0 = time.perf_counter()
        name = (await stub(b"x", timeout=10)).decode()
        lat.setdefault(name, []).append(time.perf_counter() - t0)
        return name

    # Channels until both predictors have one (connections are split by hash).
    while len(channels) < a.max_channels:
        ch = grpc.aio.insecure_channel(
            a.target, options=[("grpc.use_local_subchannel_pool", 1)])
        stub = ch.unary_unary(METHOD)
        name = await call(stub)
        channels.append((ch, stub))
        owners[name] = owners.get(name, 0) + 1
        if len(channels) >= a.channels and len(owners) >= 2:
            break

    async def stream(stub):
        nonlocal errors
        for _ in range(a.calls):
            try:
                await call(stub)
            except grpc.RpcError:
                errors += 1

    await asyncio.gather(*(stream(stub) for _, stub in channels for _ in range(a.streams)))
    for ch, _ in channels:
        await ch.close()
    out = {"predictors": {}, "errors": errors, "calls": sum(len(v) for v in lat.values())}
    for name, v in lat.items():
        out["predictors"][name] = {"n": len(v), "p50": pct(v, 0.5), "p99": pct(v, 0.99),
                                   "channels": owners.get(name, 0)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--streams", type=int, default=3, help="concurrent calls per channel")
    ap.add_argument("--calls", type=int, default=100, help="calls per stream")
    ap.add_argument("--max-channels", type=int, default=16)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a))))


if __name__ == "__main__":
    main()
