#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Prints the selection state pinned under a ferry pin root, node-independently.

What decides where a new connection goes: the hash seed (ferry_config) and, per
VIP, the service's hash mode, its predictor stage (each predictor's rendezvous
key and effective weight) and each predictor's Maglev table, with every slot
named by the backend's address and port instead of its node-local id. Two nodes
that would send the same connection to the same backend print the same JSON.

Usage: selection_state.py PIN_ROOT   (reads the pins with bpftool; needs root)
       selection_state.py --diff A.json B.json   (exit 1 and a summary if they differ)

Reads ferry_config, ferry_services, ferry_selectors, ferry_backends and the
per-predictor inner tables PIN_ROOT/tables/ID (layout: maps/ferry_maps.h,
struct ferry_table_cell): the one place the seed test reads them.
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

    def table(pid):
        cells = [bytes(int(x, 16) for x in r["value"]) if not isinstance(r["value"], int)
                 else r["value"].to_bytes(8, "little")
                 for r in bpftool("map", "dump", "pinned", os.path.join(pin, "tables", str(pid)))]
        size, n = struct.unpack("<II", cells[0])
        ids = [struct.unpack("<II", cells[2 + (size + 3) // 4 + i // 2])[i % 2] for i in range(n)]
        return [backend(ids[struct.unpack("<4H", cells[2 + s // 4])[s % 4]])
                for s in range(size)]

    selectors = {btf(e)["key"]: btf(e)["value"]
                 for e in bpftool("map", "dump", "pinned", os.path.join(pin, "ferry_selectors"))}
    services = {}
    for e in bpftool("map", "dump", "pinned", os.path.join(pin, "ferry_services")):
        k, v = btf(e)["key"], btf(e)["value"]
        if not v["id"] or v["flags"] & 2:  # FERRY_SVC_F_ADDR_MARKER: no table
            continue
        vip = "%d/%s/%d/%d" % (k["family"], ".".join(str(a) for a in k["addr"]), k["port"],
                               k["proto"])
        sel = selectors.get(v["id"], {"npredictors": 0, "preds": []})
        preds = sorted(({"key": p["key"], "weight": p["weight"], "slots": table(p["predictor_id"])}
                        for p in sel["preds"][:sel["npredictors"]]), key=lambda p: p["key"])
        services[vip] = {"hash_mode": v["hash_mode"], "table_size": v["table_size"],
                         "predictors": preds}
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
        if sa["hash_mode"] != sb["hash_mode"] or sa["table_size"] != sb["table_size"]:
            problems.append("VIP %s: hash_mode/table_size %s/%s vs %s/%s" %
                            (vip, sa["hash_mode"], sa["table_size"], sb["hash_mode"],
                             sb["table_size"]))
        pa = {p["key"]: p for p in sa["predictors"]}
        pb = {p["key"]: p for p in sb["predictors"]}
        if set(pa) != set(pb):
            problems.append("VIP %s: predictors differ" % vip)
            continue
        for key in sorted(pa):
            if pa[key]["weight"] != pb[key]["weight"]:
                problems.append("VIP %s predictor %#x: weight %d vs %d" %
                                (vip, key, pa[key]["weight"], pb[key]["weight"]))
            x, y = pa[key]["slots"], pb[key]["slots"]
            n = sum(1 for i, j in zip(x, y) if i != j)
            if n or len(x) != len(y):
                problems.append("VIP %s predictor %#x: %d of %d/%d slots name another backend" %
                                (vip, key, n, len(x), len(y)))
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
            "/".join("+".join(str(len(p["slots"])) for p in s["predictors"])
                     for s in a["services"].values())))
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    json.dump(state(sys.argv[1]), sys.stdout)
    print()


if __name__ == "__main__":
    main()
