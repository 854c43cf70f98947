#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Large messages out, for vmtests/scenarios/grpc.sh: on one channel, CALLS
times a server-streaming call of MSGS messages of SIZE bytes
(/ferry.Model/Stream) followed by a unary call, each checked. Prints the
calls made; exits 1 on any failure.
"""
import sys

import grpc


def main():
    target, calls, msgs, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ch = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)])
    stream = ch.unary_stream("/ferry.Model/Stream")
    unary = ch.unary_unary("/ferry.Model/Predict")
    for _ in range(calls):
        got = [len(m) for m in stream(b"%d:%d" % (msgs, size), timeout=60)]
        if got != [size] * msgs:
            sys.exit("stream: %d messages, sizes %s" % (len(got), sorted(set(got))))
        unary(b"x", timeout=10)
    print(2 * calls)


if __name__ == "__main__":
    main()
