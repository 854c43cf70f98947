#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A real gRPC server and client for the rebalance scenario (Debian's python3-grpcio).

serve:  answers the unary method /ferry.Echo/Who with its --name (raw bytes,
        no generated stubs), on [::]:PORT; a request that is a number of
        milliseconds is answered that long after it arrived (a model's
        prediction time).
client: holds --channels channels open, each with its own subchannel pool (so
        each is its own TCP connection: gRPC shares one connection among
        channels with equal arguments otherwise), and calls every channel in
        turn every --interval seconds until SIGTERM. With --back-to-back each
        channel has its own thread that starts its next call as soon as the
        previous one returned (no pause, --interval unused): such a channel
        always has a call in flight but for the client's own turnaround, as a
        busy gRPC client does. --call-ms MS asks the server to take MS ms over
        each call. One JSON line per call to
        --log: {"t": CLOCK_MONOTONIC seconds, "ch": i, "backend": NAME or null,
        "code": "OK" or the status name, "detail": text}. With --retry-unavailable
        the channels carry a service config whose retry policy retries a call
        that ends UNAVAILABLE (up to 3 attempts), as gRPC's retry design advises.
"""
import argparse
import json
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

METHOD = "/ferry.Echo/Who"


def serve(a):
    name = a.name.encode()

    def who(request, context):
        if request.isdigit():
            time.sleep(int(request) / 1000)
        return name

    handler = grpc.method_handlers_generic_handler(
        "ferry.Echo",
        {"Who": grpc.unary_unary_rpc_method_handler(who)},
    )
    # 16: the rebalance scenario's busy client keeps 4 calls waiting on one server
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("[::]:%d" % a.port)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


def client(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    chans, calls = [], []
    for i in range(a.channels):
        opts = [("grpc.use_local_subchannel_pool", 1), ("ferry.channel", i)]
        if a.retry_unavailable:
            opts.append(("grpc.enable_retries", 1))
            opts.append(("grpc.service_config", json.dumps({"methodConfig": [{
                "name": [{"service": "ferry.Echo"}],
                "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s",
                                "maxBackoff": "0.1s", "backoffMultiplier": 2,
                                "retryableStatusCodes": ["UNAVAILABLE"]}}]})))
        ch = grpc.insecure_channel(a.target, options=opts)
        chans.append(ch)
        calls.append(ch.unary_unary(METHOD))
    out = open(a.log, "a", buffering=1)
    out_lock = threading.Lock()
    request = str(a.call_ms).encode() if a.call_ms else b"x"

    def one(i, call):
        t = time.monotonic()
        try:
            backend = call(request, timeout=a.timeout).decode()
            rec = {"t": t, "ch": i, "backend": backend, "code": "OK"}
        except grpc.RpcError as e:
            rec = {"t": t, "ch": i, "backend": None, "code": e.code().name,
                   "detail": e.details()}
        with out_lock:
            out.write(json.dumps(rec) + "\n")

    def back_to_back(i, call):
        while not stop:
            one(i, call)

    if a.back_to_back:
        threads = [threading.Thread(target=back_to_back, args=(i, call), daemon=True)
                   for i, call in enumerate(calls)]
        for th in threads:
            th.start()
        # the main thread takes the signal; sleep in short steps to see it
        while not stop:
            time.sleep(0.05)
        for th in threads:
            th.join()
    while not stop:
        for i, call in enumerate(calls):
            one(i, call)
        time.sleep(a.interval)
    for ch in chans:
        ch.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, default=9000)
    s.add_argument("--name", required=True)
    c = sub.add_parser("client")
    c.add_argument("--target", required=True)
    c.add_argument("--channels", type=int, default=4)
    c.add_argument("--interval", type=float, default=0.05)
    c.add_argument("--timeout", type=float, default=2.0)
    c.add_argument("--back-to-back", action="store_true")
    c.add_argument("--call-ms", type=int, default=0)
    c.add_argument("--retry-unavailable", action="store_true")
    c.add_argument("--log", required=True)
    a = ap.parse_args()
    (serve if a.cmd == "serve" else client)(a)


if __name__ == "__main__":
    sys.exit(main())
