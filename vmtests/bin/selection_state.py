#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Prints the selection state pinned under a ferry pin root, node-independently.

What decides where a new connection goes: the hash seed (ferry_config) and, per
VIP, the service's flags and its lookup table, with every slot named by the
backend's address and port instead of its node-local id. Two nodes that would
send the same connection to the same backend print the same JSON.

Usage: selection_state.py PIN_ROOT   (reads the pins with bpftool; needs root)
       selection_state.py --diff A.json B.json   (exit 1 and a summary if they differ)

Reads ferry_config, ferry_services, ferry_backends and the per-service inner
tables PIN_ROOT/tables/ID: when the selection maps change (issue 13), this is
the one place the test reads them.
"""
import json
import os
import struct
import subprocess
import sys


def bpftool(*args):
    out = subprocess.run(["bpftool", "-j", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def btf(e):
    # Maps with BTF (ferry's own): the typed view is under "formatted".
    return e.get("formatted", e)


def u32(v):
    return v if isinstance(v, int) else int.from_bytes(bytes(int(x, 16) for x in v), "little")


def state(pin):
    cfg = btf(bpftool("map", "dump", "pinned", os.path.join(pin, "ferry_config"))[0])["value"]
    backends = {}

    def backend(bid):
        if bid == 0:
            return None
        if bid not in backends:
            key = [hex(b) for b in struct.pack("<I", bid)]
            be = btf(bpftool("map", "lookup", "pinned", os.path.join(pin, "ferry_backends"),
                             "key", *key))["value"]
            backends[bid] = "%d/%s/%d" % (be["family"], ".".join(str(a) for a in be["addr"]),
                                          be["port"])
        return backends[bid]

    services = {}
    for e in bpftool("map", "dump", "pinned", os.path.join(pin, "ferry_services")):
        k, v = btf(e)["key"], btf(e)["value"]
        if not v["id"] or v["flags"] & 2:  # FERRY_SVC_F_ADDR_MARKER: no table
            continue
        vip = "%d/%s/%d/%d" % (k["family"], ".".join(str(a) for a in k["addr"]), k["port"],
                               k["proto"])
        table = os.path.join(pin, "tables", str(v["id"]))
        slots = [backend(u32(r["value"])) for r in bpftool("map", "dump", "pinned", table)]
        services[vip] = {"flags": v["flags"], "table_size": v["table_size"], "slots": slots}
    return {"hash_seed": cfg["hash_seed"], "services": services}


def diff(a, b):
    problems = []
    if a["hash_seed"] != b["hash_seed"]:
        problems.append("hash seeds differ (%#x, %#x)" % (a["hash_seed"], b["hash_seed"]))
    for vip in sorted(set(a["services"]) | set(b["services"])):
        sa, sb = a["services"].get(vip), b["services"].get(vip)
        if sa is None or sb is None:
            problems.append("VIP %s only on one node" % vip)
            continue
        if sa["flags"] != sb["flags"] or sa["table_size"] != sb["table_size"]:
            problems.append("VIP %s: flags/table_size %s/%s vs %s/%s" %
                            (vip, sa["flags"], sa["table_size"], sb["flags"], sb["table_size"]))
        n = sum(1 for x, y in zip(sa["slots"], sb["slots"]) if x != y)
        if n or len(sa["slots"]) != len(sb["slots"]):
            problems.append("VIP %s: %d of %d slots name another backend" %
                            (vip, n, len(sa["slots"])))
    return problems


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--diff":
        a, b = (json.load(open(p)) for p in sys.argv[2:4])
        problems = diff(a, b)
        if problems:
            print("; ".join(problems))
            sys.exit(1)
        print("identical: seed %#x, %d VIPs, %s slots" % (
            a["hash_seed"], len(a["services"]),
            "/".join(str(len(s["slots"])) for s in a["services"].values())))
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    json.dump(state(sys.argv[1]), sys.stdout)
    print()


if __name__ == "__main__":
    main()
