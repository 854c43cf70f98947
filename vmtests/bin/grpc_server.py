#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A gRPC model server stand-in for vmtests/scenarios/grpc.sh: a unary
method, /ferry.Model/Predict, that waits --delay-ms and answers with its
predictor's name; with --dump, each call's time in the handler goes to a
file (one line, seconds), the lower bound of what a proxy on the path can
measure for that call. And a server-streaming one, /ferry.Model/Stream:
asked "N:SIZE", it answers N messages of SIZE bytes (large tensors out). Generic handlers and identity serializers: no generated
code, so Debian's python3-grpcio is all it needs.
"""
import argparse
import math
import os
import random
import time
from concurrent import futures

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", action="append",
                    help="listen address, repeatable (default [::]:5001)")
    ap.add_argument("--predictor", required=True)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--delay-sigma", type=float, default=0.0,
                    help="log-normal service times with --delay-ms as median (0: fixed)")
    ap.add_argument("--dump", help="append each call's handler time (s) to this file")
    a = ap.parse_args()
    answer = a.predictor.encode()
    delay = a.delay_ms / 1000.0
    # O_APPEND: one write per line is atomic between the pool's threads, and
    # the test may truncate the file between its probes and its measurement.
    dump = os.open(a.dump, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if a.dump else -1

    def predict(request, context):
        start = time.monotonic()
        if delay and a.delay_sigma > 0:
            time.sleep(random.lognormvariate(math.log(delay), a.delay_sigma))
        elif delay:
            time.sleep(delay)
        if dump >= 0:
            os.write(dump, b"%.9f\n" % (time.monotonic() - start))
        return answer

    def stream(request, context):
        n, size = (int(x) for x in request.decode().split(":"))
        blob = answer * (size // len(answer) + 1)
        for _ in range(n):
            yield blob[:size]

    handler = grpc.method_handlers_generic_handler(
        "ferry.Model",
        {"Predict": grpc.unary_unary_rpc_method_handler(predict),
         "Stream": grpc.unary_stream_rpc_method_handler(stream)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=[("grpc.max_send_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((handler,))
    for addr in a.addr or ["[::]:5001"]:
        server.add_insecure_port(addr)
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
