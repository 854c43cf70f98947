#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Folds bench/run's raw measurements into results.json and prints the table.

  report.py --raw DIR --out results.json [--elapsed S] [--markdown results.md]

Every entry is {"value", "unit", "baseline", "baseline_name", "ratio"}; the baseline
comes from the same run. Figures measured over interleaved rounds also carry
"runs" (every round's raw value), "min", "max" and the median as "value". A
balancer that beats its own no-balancer floor (a case whose path is the floor's
path plus its work) is flagged "noise" rather than reported as a win. Targets are judged here and reported MET or MISSED with the
reason; nothing fails the run (speed is not a test).
"""
import argparse
import glob
import json
import os
import re
import statistics


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def entry(value, unit, baseline=None, baseline_name=None, note=None):
    e = {"value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
         "ratio": None}
    if value is not None and baseline not in (None, 0):
        e["ratio"] = value / baseline
    if note:
        e["note"] = note
    return e


def median(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def spread(v):
    v = [x for x in v if x is not None]
    if not v:
        return {}
    s = {"min": min(v), "max": max(v), "n": len(v)}
    if len(v) >= 4:
        q = statistics.quantiles(v, n=4)
        s["iqr"] = [q[0], q[2]]
    return s


def rounds_entry(values, unit, base_values=None, base_name=None, higher_is_better=True,
                 floor=False):
    """Median over rounds with the spread; ratio of medians, and the median of per-round
    ratios (each round's case against the same round's baseline)."""
    e = entry(median(values), unit, median(base_values) if base_values else None, base_name)
    e.update(spread(values))
    e["runs"] = values
    if base_values:
        pr = [a / b for a, b in zip(values, base_values) if a is not None and b]
        e["ratio_per_round"] = pr
        e["ratio_median_of_rounds"] = median(pr)
        if floor and e["ratio"] is not None:
            better = e["ratio"] > 1 if higher_is_better else e["ratio"] < 1
            if better:
                e["noise"] = ("beats the no-balancer floor (%s): a balancer adds work to the "
                              "same path, so this is run-to-run noise, not a win" % base_name)
    return e


# ------------------------------------------------------------------ pkt_ns

def pkt_section(raw):
    d = load(os.path.join(raw, "pkt_ns.json"))
    if d is None:
        return {"missing": "pkt_bench wrote no JSON (see the run's log)"}
    if "missing" in d:
        return d
    out = {}
    for name, c in d.get("cases", {}).items():  # pkt_bench's order
        e = entry(c.get("ns_per_packet"), "ns/packet", c.get("floor_ns"),
                  "floor, %s mode" % c.get("mode"))
        for k in ("mode", "above_nop_ns", "above_floor_ns", "nop_ns", "verdict_name",
                  "sample_every", "does", "repeat_fallback", "synack_ns"):
            if k in c:
                e[k] = c[k]
        out[name] = e
    ka = d.get("cases", {})
    for what, f, k in (("established", "xdp_established_v4_calls", "katran_established_v4_calls"),
                       ("new_flow", "xdp_new_flow_v4_calls", "katran_new_flow_v4_calls"),
                       ("connection", "xdp_connection_v4_calls", "katran_connection_v4_calls")):
        if f in ka and k in ka:
            out["ferry_vs_katran_%s" % what] = entry(
                ka[f]["above_nop_ns"], "ns/packet above nop", ka[k]["above_nop_ns"],
                "Katran %s (calls mode, above nop)" % what.replace("_", " "),
                "ferry: %s; Katran: %s" % (ka[f].get("does"), ka[k].get("does")))
    # The interleaved repetitions, when pkt_bench made them: medians of each side.
    for what, rep in (d.get("katran_interleaved") or {}).items():
        k = "ferry_vs_katran_%s" % what
        f, kt = rep.get("ferry_above_nop_ns", []), rep.get("katran_above_nop_ns", [])
        if k in out and f and kt:
            e = rounds_entry(f, "ns/packet above nop", kt,
                             "Katran %s (calls mode, above nop)" % what.replace("_", " "))
            e["note"] = out[k].get("note")
            e["katran_runs"] = kt
            out[k] = e
    if "katran_skipped" in d:
        out["_katran_skipped"] = d["katran_skipped"]
    katran = load(os.path.join(raw, "katran.json"))
    if katran:
        out["_katran_source"] = katran
    for k in ("programs", "kernel", "baselines", "calls", "repeat", "cpu",
              "sample_every_default"):
        if k in d:
            out["_" + k] = d[k]
    return out


# --------------------------------------------------------------------- pps

def jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        return []


COUNTERS = ["malformed", "fragment", "ipv6_ext", "vip_port_miss", "no_backend", "flow_miss",
            "flow_full", "fib_stack", "fib_drop", "redirect", "redirect_neigh", "xdp_handoff",
            "reply_nat", "trace_lost", "hist_miss"]


def counter_totals(doc):
    tot = {}
    for item in doc or []:
        k = item.get("key")
        if isinstance(k, list):
            k = int.from_bytes(bytes(int(b, 16) for b in k), "little")
        v = 0
        for c in item.get("values", []):
            x = c.get("value")
            if isinstance(x, list):
                x = int.from_bytes(bytes(int(b, 16) for b in x), "little")
            v += x or 0
        if isinstance(k, int) and k < len(COUNTERS):
            tot[COUNTERS[k]] = v
    return tot


def counter_delta(before, after):
    a, b = counter_totals(load(before, [])), counter_totals(load(after, []))
    return {k: b[k] - a.get(k, 0) for k in b if b[k] - a.get(k, 0)}


def sum_counters(pairs):
    tot = {}
    for before, after in pairs:
        for k, v in counter_delta(before, after).items():
            tot[k] = tot.get(k, 0) + v
    return tot


def cpu_seconds(r, irq_acct):
    """CPU time a run took on the measured CPU. Without CONFIG_IRQ_TIME_ACCOUNTING the
    generator thread's time (plus ksoftirqd's) includes the softirqs that ran in it;
    with it, softirq time is accounted apart, so /proc/stat's softirq time is added."""
    c = r.get("cpu_seconds")
    if c is None:
        return None
    if irq_acct == "y":
        c += r.get("stat_softirq_s") or 0
    return c


def pps_case(runs, irq_acct):
    wall = [r["mpps"] for r in runs]
    cpu = []
    nsf = []
    for r in runs:
        c = cpu_seconds(r, irq_acct)
        cpu.append(r["delivered"] / c / 1e6 if c and r.get("delivered") else None)
        nsf.append(c * 1e9 / r["delivered"] if c and r.get("delivered") else None)
    deliv = [r["delivered"] / r["sent"] for r in runs if r.get("sent")]
    return {"wall": wall, "cpu": cpu, "ns_per_frame": nsf, "delivered": deliv, "runs": runs}


def share(runs, sink_name):
    v = []
    for r in runs:
        if r.get("delivered"):
            v.append(r.get("per_sink", {}).get(sink_name, 0) / r["delivered"])
    return median(v)


def pps_section(raw, irq_acct):
    out = {}
    cases = {}
    for path in sorted(glob.glob(os.path.join(raw, "pps-*.jsonl"))):
        name = os.path.basename(path)[4:-6]  # NAME-SINK
        runs = jsonl(path)
        if runs:
            cases[name] = pps_case(runs, irq_acct)
    if not cases:
        return {}
    gen = cases.get("generator-xdp")
    for sink in ("xdp", "sock"):
        d = cases.get("direct-" + sink)
        ipt = cases.get("iptables-" + sink)
        for n in ("direct", "ferry", "ferry_tx", "ferry_xdp", "ferry_tc", "iptables"):
            c = cases.get("%s-%s" % (n, sink))
            if not c:
                continue
            k = "%s_%s" % (n, sink)
            # Plain forwarding is a floor only for a path that adds work to it: iptables
            # (netfilter on the forwarding path). ferry redirects frames past the node's IP
            # stack (its counters say so), so it may beat plain forwarding, and the target
            # asks it to: flagging that as noise would make the target unmeetable.
            floor = n == "iptables"
            out[k + "_mpps_wall"] = rounds_entry(c["wall"], "Mpps (wall)", d and d["wall"],
                                                 "direct (no balancer)", floor=floor)
            out[k + "_mpps_per_cpu"] = rounds_entry(c["cpu"], "Mpps/CPU-s", d and d["cpu"],
                                                    "direct (no balancer)", floor=floor)
            if ipt and n != "iptables":
                out[k + "_vs_iptables_per_cpu"] = rounds_entry(c["cpu"], "Mpps/CPU-s", ipt["cpu"],
                                                               "iptables DNAT")
            out[k + "_delivered"] = entry(median(c["delivered"]), "fraction", 1.0,
                                          "every frame sent")
            if n != "direct":
                out[k + "_canary_share"] = entry(share(c["runs"], "fx-b3"), "fraction", 0.10,
                                                 "configured weight")
            # The node alone: CPU ns per frame minus the generator's (XDP sinks only:
            # the generator run drops its frames at the node's veth with an XDP counter).
            if sink == "xdp" and gen:
                g = median(gen["ns_per_frame"])
                node = [x - g if x and g and x > g else None for x in c["ns_per_frame"]]
                out[k + "_node_ns"] = rounds_entry(node, "ns/frame (node, CPU)",
                                                   d and [x - g if x and g else None
                                                          for x in d["ns_per_frame"]],
                                                   "direct (no balancer)", higher_is_better=False,
                                                   floor=floor)
                out[k + "_node_mpps_per_cpu"] = rounds_entry(
                    [1e3 / x if x else None for x in node], "Mpps/CPU-s (node only)",
                    d and [1e3 / (x - g) if x and g and x > g else None for x in d["ns_per_frame"]],
                    "direct (no balancer)", floor=floor)
                if ipt and n != "iptables":
                    out[k + "_node_vs_iptables"] = rounds_entry(
                        [1e3 / x if x else None for x in node], "Mpps/CPU-s (node only)",
                        [1e3 / (x - g) if x and g and x > g else None for x in ipt["ns_per_frame"]],
                        "iptables DNAT (node only)")
    if gen:
        out["generator_mpps_per_cpu"] = rounds_entry(gen["cpu"], "Mpps/CPU-s", None, None)
        out["generator_mpps_per_cpu"]["note"] = "frames made and dropped at the node's veth"
    # How pps_gen made its frames: live frames, or a packet socket where the kernel refuses
    # them (slower: wall-clock rates may be the generator's, per-CPU node figures still hold).
    out["_generator_modes"] = sorted({r.get("generator", "live-frames")
                                     for c in cases.values() for r in c["runs"]})
    for n in ("ferry", "ferry_tx"):
        pairs = [(b, b.replace("-before.", "-after."))
                 for b in sorted(glob.glob(os.path.join(raw, "%s-counters-before.r*.json" % n)))]
        c = sum_counters(pairs)
        if c:
            out["_%s_counters" % n] = c
    out["_runs"] = {k: v["runs"] for k, v in cases.items()}
    return out


def pod_pps_section(raw, irq_acct):
    out = {}
    cases = {}
    for path in sorted(glob.glob(os.path.join(raw, "pod", "pps-*.jsonl"))):
        name = os.path.basename(path)[4:-6]  # NAME-WHERE-SINK
        runs = jsonl(path)
        if runs:
            cases[name] = pps_case(runs, irq_acct)
    pairs = [(b, b.replace("-before.", "-after."))
             for b in sorted(glob.glob(os.path.join(raw, "pod", "ferry-counters-before.r*.json")))]
    counters = sum_counters(pairs)
    # A floor only where the path is pod -> pod forwarding plus work: iptables, and ferry
    # when it handed its packets to the stack (the policy-safe default: fib_stack). The
    # opt-in fast path (ferry_peer) skips the stack and may beat it.
    stack = {"iptables"} | ({"ferry"} if (counters or {}).get("fib_stack") else set())
    for where in ("local", "remote"):
        for sink in ("xdp", "sock"):
            d = cases.get("direct-%s-%s" % (where, sink))
            ipt = cases.get("iptables-%s-%s" % (where, sink))
            for n in ("direct", "ferry", "ferry_peer", "iptables"):
                c = cases.get("%s-%s-%s" % (n, where, sink))
                if not c:
                    continue
                k = "pod_%s_%s_%s" % (where, n, sink)
                out[k + "_mpps_wall"] = rounds_entry(c["wall"], "Mpps (wall)", d and d["wall"],
                                                     "direct pod -> pod", floor=n in stack)
                out[k + "_mpps_per_cpu"] = rounds_entry(c["cpu"], "Mpps/CPU-s", d and d["cpu"],
                                                        "direct pod -> pod", floor=n in stack)
                if ipt and n.startswith("ferry"):
                    out[k + "_vs_iptables_per_cpu"] = rounds_entry(c["cpu"], "Mpps/CPU-s",
                                                                   ipt["cpu"], "iptables DNAT")
                out[k + "_delivered"] = entry(median(c["delivered"]), "fraction", 1.0,
                                              "every frame sent")
    if counters:
        out["_ferry_counters"] = counters
    out["_runs"] = {k: v["runs"] for k, v in cases.items()}
    return out


# -------------------------------------------------------------------- http

UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6}


def parse_wrk(path):
    try:
        text = open(path).read()
    except OSError:
        return None
    r = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        return {"error": text.strip().splitlines()[-1] if text.strip() else "no output"}
    r["rps"] = float(m.group(1))
    for p in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, text, re.M)
        if m:
            r["p%s_us" % p] = float(m.group(1)) * UNIT[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(map(int, m.groups())) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", text)
    r["requests"] = int(m.group(1)) if m else None
    return r


def http_runs(raw, name, mode):
    """Every round's wrk result for NAME-MODE, in round order (None for a failed run)."""
    runs = []
    for path in sorted(glob.glob(os.path.join(raw, "http", "%s-%s.r*.txt" % (name, mode))),
                       key=lambda p: int(re.search(r"\.r(\d+)\.txt$", p).group(1))):
        w = parse_wrk(path) or {"error": "no output"}
        be = load(path[:-4] + ".backends.json", {})
        w["backends"] = be
        w["syn_retrans"] = load(path[:-4] + ".tcp.json", {}).get("syn_retrans")
        for what in ("connections", "requests"):
            n = {b: max(0, v.get(what, 0)) for b, v in be.items()}
            tot = sum(n.values())
            w["%s_total" % what] = tot
            canary = [b for b in n if b.endswith("b3")]
            w["canary_%s_share" % what[:-1]] = (n[canary[0]] / tot) if canary and tot else None
        runs.append(w)
    return runs


def http_group(raw, names, floor_name, prefix, out):
    res = {}
    for name in names:
        for mode in ("keepalive", "close", "single"):
            runs = http_runs(raw, name, mode)
            if runs:
                res[(name, mode)] = runs
    for mode in ("keepalive", "close", "single"):
        d = res.get((floor_name, mode))
        drps = [r.get("rps") for r in d] if d else None
        for name in names:
            runs = res.get((name, mode))
            if not runs:
                continue
            k = "%s%s_%s" % (prefix, name, mode)
            rps = [r.get("rps") for r in runs]
            out[k + "_rps"] = rounds_entry(rps, "requests/s", drps, "%s (no balancer)" % floor_name,
                                           floor=(name != floor_name))
            p50 = [r.get("p50_us") for r in runs]
            p99 = [r.get("p99_us") for r in runs]
            out[k + "_p50_us"] = rounds_entry(p50, "us", [r.get("p50_us") for r in d] if d else None,
                                              floor_name, higher_is_better=False)
            out[k + "_p99_us"] = rounds_entry(p99, "us", [r.get("p99_us") for r in d] if d else None,
                                              floor_name, higher_is_better=False)
            syn = [r.get("syn_retrans") for r in runs]
            if any(x is not None for x in syn):
                out[k + "_syn_retrans"] = syn
            errs = [r for r in runs if "error" in r]
            if errs:
                out[k + "_errors"] = [r["error"] for r in errs]
            se = sum(r.get("socket_errors", 0) + r.get("non_2xx", 0) for r in runs)
            if se:
                out[k + "_socket_errors"] = se
            if mode != "single" and any(r.get("canary_connection_share") is not None for r in runs):
                out[k + "_canary_conn_share"] = entry(
                    median([r.get("canary_connection_share") for r in runs]), "fraction", 0.10,
                    "configured weight",
                    "%d connections over %d rounds" % (sum(r["connections_total"] for r in runs),
                                                       len(runs)))
    out["_raw_" + (prefix or "gw_")] = {"%s_%s" % k: v for k, v in res.items()}
    return res


def http_section(raw):
    out = {}
    http_group(raw, ["direct", "ferry", "ferry_xdp", "ferry_tc", "haproxy", "iptables"], "direct",
               "", out)
    if "ferry_keepalive_rps" in out and "haproxy_keepalive_rps" in out:
        out["ferry_vs_haproxy_keepalive_rps"] = rounds_entry(
            out["ferry_keepalive_rps"]["runs"], "requests/s", out["haproxy_keepalive_rps"]["runs"],
            "haproxy (mode tcp)")
    f, d = out.get("ferry_single_p50_us"), out.get("direct_single_p50_us")
    if f and d and f["value"] is not None and d["value"] is not None:
        out["ferry_single_p50_added_us"] = entry(f["value"] - d["value"], "us", None, None,
                                                 "median ferry p50 minus median direct p50")
    f, d = out.get("ferry_single_p99_us"), out.get("direct_single_p99_us")
    if f and d and f["value"] is not None and d["value"] is not None:
        out["ferry_single_p99_added_us"] = entry(f["value"] - d["value"], "us", None, None,
                                                 "median ferry p99 minus median direct p99")
    c = sum_counters([(b, b.replace("ferry-counters-after.", "ferry-http-counters-after."))
                      for b in sorted(glob.glob(os.path.join(raw, "ferry-counters-after.r*.json")))])
    if c:
        out["_ferry_counters"] = c
    return out


def pod_http_section(raw):
    out = {}
    for where in ("local", "remote"):
        http_group(raw, ["pod-direct-%s" % where, "pod-ferry-%s" % where,
                         "pod-ferry_peer-%s" % where, "pod-iptables-%s" % where],
                   "pod-direct-%s" % where, "", out)
    return {k.replace("pod-", "pod_").replace("-", "_"): v for k, v in out.items()}


# ------------------------------------------------------------ ferryd's CPU

def ferryd_cpu_section(raw):
    """ferryd's own CPU time during each case that ran it (bench/lib.sh fx_cpu_note), per round:
    the packet-rate figures count the measured CPU only, so control-plane work per packet or
    per connection would not show there."""
    cases = {}
    for r in jsonl(os.path.join(raw, "ferryd-cpu.jsonl")):
        cases.setdefault(r["case"], []).append(r)
    out = {}
    for name, runs in cases.items():
        pct = [100.0 * r["cpu_ms"] / 1e3 / r["wall_s"] for r in runs if r.get("wall_s")]
        out[name] = {"cpu_ms": [r["cpu_ms"] for r in runs], "wall_s": [r["wall_s"] for r in runs],
                     "percent_of_one_cpu": median(pct), "percent_min": min(pct) if pct else None,
                     "percent_max": max(pct) if pct else None}
    return out


# ----------------------------------------------------------------- control

def slope(points):
    """Least-squares slope of (x, y) points."""
    if len(points) < 2:
        return None
    mx = statistics.mean(p[0] for p in points)
    my = statistics.mean(p[1] for p in points)
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else None


def control_section(raw):
    out = {}
    wc = load(os.path.join(raw, "weight_change.json"))
    # Before issue 13's incremental path: file write -> kernel p99 47 ms (make bench, 2026-12-05).
    if wc and wc.get("observed"):
        out["weight_change_p50_ms"] = entry(wc["p50_ms"], "ms", 47.0, "before (p99 47 ms)")
        out["weight_change_p99_ms"] = entry(wc["p99_ms"], "ms", 47.0, "before (p99 47 ms)")
        out["weight_change_meta_p99_ms"] = entry(wc.get("meta_p99_ms"), "ms", None, None,
                                                 "ferry_svc_meta.table_generation visible")
        # The same changes split at the rename's return: the writer's own syscall (the file
        # system's part; on this VM's ext4 it replaces the file with a flush), then the file
        # written -> the kernel, all ferry can see of it.
        out["weight_change_rename_p99_ms"] = entry(wc.get("rename_p99_ms"), "ms", None, None,
                                                   "the rename itself")
        out["weight_change_written_p50_ms"] = entry(wc.get("written_p50_ms"), "ms", None, None,
                                                    "from the file written")
        out["weight_change_written_p99_ms"] = entry(wc.get("written_p99_ms"), "ms", 47.0,
                                                    "before (p99 47 ms, rename included)",
                                                    "from the file written")
        out["weight_change_observed"] = "%d of %d" % (wc["observed"], wc["changes"])
    gc = load(os.path.join(raw, "flow_gc.json"))
    if gc and gc.get("gc_ms"):
        out["flow_gc_pass_ms"] = rounds_entry(gc["gc_ms"], "CPU ms per pass", gc.get("walk_ms"),
                                              "per-key walk (get_next_key + lookup)",
                                              higher_is_better=False)
        out["flow_gc_pass_ms"]["note"] = "%d live flows, nothing due" % gc.get("flows", 0)
        out["flow_gc_walk_ms"] = rounds_entry(gc.get("walk_ms"), "CPU ms per pass")
    fw = load(os.path.join(raw, "ferryctl_weights.json"))
    if fw and fw.get("observed"):
        out["ferryctl_weights_p50_ms"] = entry(fw["p50_ms"], "ms", 1.0, "target")
        out["ferryctl_weights_p99_ms"] = entry(fw["p99_ms"], "ms", 1.0, "target")
        out["ferryctl_weights_exit_p50_ms"] = entry(fw.get("exit_p50_ms"), "ms", None, None,
                                                    "ferryctl's exit")
        out["ferryctl_weights_floor_p50_ms"] = entry(fw.get("floor_p50_ms"), "ms", None, None,
                                                     "`ferryctl --help`, fork to exit")
        out["ferryctl_weights_above_floor_p50_ms"] = entry(
            fw.get("above_floor_p50_ms"), "ms", 1.0, "target",
            "each change minus the `ferryctl --help` run after it")
        out["ferryctl_weights_observed"] = "%d of %d" % (fw["observed"], fw["changes"])
    scale = {}
    for n in (100, 1000, 10000):
        d = load(os.path.join(raw, "scale-%d.json" % n))
        if d:
            scale[n] = d
    base = scale.get(100, {})
    for n, d in sorted(scale.items()):
        if "skipped" in d:
            out["sync_%d_skipped" % n] = d["skipped"]
            continue
        out["sync_%d_ms" % n] = entry(d.get("sync_ms"), "ms", base.get("sync_ms"), "100 deployments")
        if d.get("sync_runs_ms"):
            out["sync_%d_ms" % n].update(spread(d["sync_runs_ms"]))
            out["sync_%d_ms" % n]["runs"] = d["sync_runs_ms"]
        out["rss_%d_kb" % n] = entry(d.get("rss_kb"), "kB", base.get("rss_kb"), "100 deployments")
        bpf = d.get("bpf") or {}
        bb = (base.get("bpf") or {}).get("memlock_bytes")
        out["bpf_%d_bytes" % n] = entry(bpf.get("memlock_bytes"), "bytes", bb, "100 deployments")
    pts = [(n, d) for n, d in sorted(scale.items()) if "skipped" not in d]
    for key, get, unit in (("sync_ms", lambda d: d.get("sync_ms"), "ms"),
                           ("rss_kb", lambda d: d.get("rss_kb"), "kB"),
                           ("bpf_bytes", lambda d: (d.get("bpf") or {}).get("memlock_bytes"),
                            "bytes")):
        xy = [(n, get(d)) for n, d in pts if get(d) is not None]
        s = slope(xy)
        if s is None:
            continue
        # Linearity: the marginal cost per service between the last two sizes against
        # the one between the first two; 1.0 is a straight line.
        marg = [(xy[i + 1][1] - xy[i][1]) / (xy[i + 1][0] - xy[i][0]) for i in range(len(xy) - 1)]
        out["per_service_%s" % key] = entry(s, unit + "/service", None, None,
                                            "least-squares slope over %s" % [p[0] for p in xy])
        if len(marg) >= 2 and marg[0]:
            out["linearity_%s" % key] = entry(marg[-1], unit + "/service", marg[0],
                                              "marginal cost, first interval")
    out["_raw"] = {"weight_change": wc, "ferryctl_weights": fw, "scale": scale,
                   "weight_change_sync": load(os.path.join(raw, "weight_change_sync.json"))}
    return out


# ----------------------------------------------------------------- targets

# ----------------------------------------------------------------- targets

def ratio(sec, key):
    e = sec.get(key)
    return e.get("ratio") if isinstance(e, dict) else None


def value(sec, key):
    e = sec.get(key)
    return e.get("value") if isinstance(e, dict) else None


def judge(name, got, ok, target, why_missed, unit="", noise=None, spread_note=None):
    if got is None:
        return {"target": name, "want": target, "got": None, "verdict": "MISSED",
                "reason": "not measured: " + why_missed}
    t = {"target": name, "want": target, "got": ("%.3g%s" % (got, unit)),
         "verdict": "MET" if ok(got) else "MISSED",
         "reason": "" if ok(got) else why_missed}
    if noise:
        # Above the floor is noise, never a win: the run cannot tell whether the target is
        # met, and a benchmark that cannot flatter does not say MET then.
        t["noise"] = noise
        t["verdict"] = "MISSED"
        t["reason"] = "not judged: measured above the no-balancer floor, which is noise, not " \
                      "a win; this run cannot tell whether the target is met"
    if spread_note:
        t["spread"] = spread_note
    return t


def spread_of(e):
    if not isinstance(e, dict) or e.get("ratio_per_round") is None:
        return None
    pr = [x for x in e["ratio_per_round"] if x is not None]
    if not pr:
        return None
    return "per-round ratios %.2f..%.2f over %d rounds (median %.2f)" % (
        min(pr), max(pr), len(pr), median(pr))


def targets(pkt, pps, http, pod, ctl, machine):
    t = []
    kernel = machine.get("kernel", "")
    km = re.match(r"(\d+)\.(\d+)", kernel)
    has_features = bool(km) and (int(km.group(1)), int(km.group(2))) >= (6, 3)
    default_note = "" if has_features else \
        " (Linux %s has no xdp-features: what the safe default gives)" % kernel
    # Packet rate, by default (ferryd as it sets itself up), per CPU-second.
    for sink, what in (("xdp", "XDP counter sinks, node only"),
                       ("sock", "socket sinks, end to end")):
        if sink == "xdp":
            vd, vi = pps.get("ferry_xdp_node_mpps_per_cpu"), pps.get("ferry_xdp_node_vs_iptables")
        else:
            vd, vi = pps.get("ferry_sock_mpps_per_cpu"), pps.get("ferry_sock_vs_iptables_per_cpu")
        c = pps.get("_ferry_counters") or {}
        why = "ferry's counters over the runs: %s" % (
            ", ".join("%s %d" % kv for kv in sorted(c.items())) or "none")
        t.append(judge("gateway packet rate >= 1.2x plain forwarding (%s)%s" % (what, default_note),
                       vd and vd.get("ratio"), lambda r: r >= 1.2, ">= 1.2x", why, "x",
                       vd and vd.get("noise"), spread_of(vd)))
        t.append(judge("gateway packet rate >= 3x iptables DNAT (%s)%s" % (what, default_note),
                       vi and vi.get("ratio"), lambda r: r >= 3, ">= 3x", why, "x", None,
                       spread_of(vi)))
    for where in ("local", "remote"):
        for sink in ("xdp", "sock"):
            vd = pod.get("pod_%s_ferry_%s_mpps_per_cpu" % (where, sink))
            vi = pod.get("pod_%s_ferry_%s_vs_iptables_per_cpu" % (where, sink))
            c = pod.get("_ferry_counters") or {}
            why = "TC on the client pod's host veth (ferryd --pod-iface); ferry's counters: %s" % (
                ", ".join("%s %d" % kv for kv in sorted(c.items())) or "none")
            label = "%s backend, %s sinks, end to end" % (
                "same-node" if where == "local" else "second-node", "XDP counter" if sink == "xdp"
                else "socket")
            t.append(judge("pod packet rate >= 1.2x direct pod->pod (%s)%s" % (label, default_note),
                           vd and vd.get("ratio"), lambda r: r >= 1.2, ">= 1.2x", why, "x",
                           vd and vd.get("noise"), spread_of(vd)))
            t.append(judge("pod packet rate >= 3x iptables DNAT (%s)%s" % (label, default_note),
                           vi and vi.get("ratio"), lambda r: r >= 3, ">= 3x", why, "x", None,
                           spread_of(vi)))
    # HTTP, pinned, medians of the interleaved rounds.
    n = machine.get("rounds")
    for mode, want in (("keepalive", 0.97), ("close", 0.95)):
        e = http.get("ferry_%s_rps" % mode)
        t.append(judge("HTTP %s rps >= %.2fx direct (pinned, median of %s rounds)" % (
            "keep-alive" if mode == "keepalive" else "Connection: close", want, n),
            e and e.get("ratio"), lambda r, w=want: r >= w, ">= %.2fx" % want,
            "wrk, three nginx workers and the node share 2 cores; see the HTTP section" if mode ==
            "keepalive" else "the client's core (wrk and the forward path) is the bottleneck, and "
            "each request is a new connection: the flow writes of a connection (embryonic, then "
            "confirmed) and its cold hash buckets", "x",
            e and e.get("noise"), spread_of(e)))
        for where in ("local", "remote"):
            e = pod.get("pod_ferry_%s_%s_rps" % (where, mode))
            if e:
                t.append(judge("pod HTTP %s rps >= %.2fx direct pod->pod (%s backend)" % (
                    "keep-alive" if mode == "keepalive" else "Connection: close", want,
                    "same-node" if where == "local" else "second-node"),
                    e.get("ratio"), lambda r, w=want: r >= w, ">= %.2fx" % want,
                    "see the pod-mode section", "x", e.get("noise"), spread_of(e)))
    # Katran, same harness, same mode (calls), additive cost above the empty program.
    skipped = pkt.get("_katran_skipped")
    e = pkt.get("ferry_vs_katran_established")
    t.append(judge("established path <= 0.6x Katran's LRU-hit path (same harness)",
                   e and e.get("ratio"), lambda r: r <= 0.6, "<= 0.6x",
                   skipped or "ferry: one flow lookup, DNAT + checksums, next hop, stats per packet "
                   "(no reply-half lookup: the reply rebuilds a lost one); Katran a VIP and an LRU "
                   "lookup and IPIP encapsulation", "x", None, spread_of(e)))
    e = pkt.get("ferry_vs_katran_connection")
    t.append(judge("new-flow path per connection (SYN + first ACK) <= 1.0x Katran's (same "
                   "harness)", e and e.get("ratio"), lambda r: r <= 1.0, "<= 1.0x",
                   skipped or "ferry keeps state for both directions (DNAT) and apart until the "
                   "client's ACK proves the handshake: a flow-table miss and an embryonic insert at "
                   "the SYN, two confirmed inserts and a delete at the ACK, each in a bucket that "
                   "is cold after the syscall; Katran (DSR, no reply path) one LRU insert",
                   "x", None, spread_of(e)))
    e = pkt.get("ferry_vs_katran_new_flow")
    t.append(judge("new-flow path, the SYN alone, <= 1.0x Katran's (same harness)",
                   e and e.get("ratio"), lambda r: r <= 1.0, "<= 1.0x",
                   skipped or "ferry looks for an open confirmed flow of the tuple (a miss, about "
                   "as dear as an insert: a cold bucket) and inserts the embryonic forward entry "
                   "(a backend no other service shares needs no embryonic reply half); Katran one "
                   "LRU insert", "x", None, spread_of(e)))
    # The earlier per-packet targets, now against the floor in the same mode.
    est, new = pkt.get("xdp_established_v4"), pkt.get("xdp_new_flow_v4_calls")
    t.append(judge("established forward path within 3x floor (repeat mode)",
                   est and est.get("ratio"), lambda r: r <= 3, "<= 3x",
                   "flow lookup, rewrite, stats, sampling, next hop against a parse-and-XDP_TX floor",
                   "x"))
    t.append(judge("new-flow path within 6x floor (calls mode)", new and new.get("ratio"),
                   lambda r: r <= 6, "<= 6x",
                   "a flow-table miss, an LRU hash insert and the weighted table", "x"))
    e = http.get("ferry_vs_haproxy_keepalive_rps")
    t.append(judge("HTTP keep-alive rps >= 1.5x HAProxy", e and e.get("ratio"),
                   lambda r: r >= 1.5, ">= 1.5x", "HAProxy, wrk and nginx compete for 2 cores",
                   "x", None, spread_of(e)))
    added = value(http, "ferry_single_p99_added_us")
    dp99 = value(http, "direct_single_p99_us")
    p50a = value(http, "ferry_single_p50_added_us")
    if added is not None and dp99 is not None and dp99 > 100:
        t.append({"target": "HTTP p99 added over direct < 20 us (1 connection)", "want": "< 20 us",
                  "got": "%.3g us" % added, "verdict": "MISSED",
                  "reason": "not measurable in this run: the direct path's own median p99 was "
                            "%.0f us (scheduling delay from other load on the 2 cores); p50 added "
                            "was %s us" % (dp99, "%.1f" % p50a if p50a is not None else "?")})
    else:
        t.append(judge("HTTP p99 added over direct < 20 us (1 connection)", added,
                       lambda v: v < 20, "< 20 us", "see the HTTP section", " us"))
    why = "scheduling on a loaded 2-core machine (the edited file alone is read and written)"
    ws = ctl.get("_raw", {}).get("weight_change_sync") or {}
    if ws.get("p50_ms") is not None:
        why += "; ferryd's sync per change took p50 %.1f ms, p99 %.1f ms" % (ws["p50_ms"],
                                                                            ws["p99_ms"])
    # Judged from the file written (the rename returned): before that ferry cannot know of
    # the edit. The end-to-end figure, the rename included, is shown beside it, and so is
    # the rename alone, so that a reader sees where a tail comes from.
    ctx = []
    for k, label in (("weight_change_p50_ms", "end to end, the rename included, p50"),
                     ("weight_change_p99_ms", "p99"),
                     ("weight_change_rename_p99_ms", "the rename alone p99"),
                     ("weight_change_written_p50_ms", "from the file written p50")):
        if value(ctl, k) is not None:
            ctx.append("%s %.2f ms" % (label, value(ctl, k)))
    if ws.get("p50_ms") is not None:
        ctx.append("ferryd's sync per change p50 %.1f ms, p99 %.1f ms" % (ws["p50_ms"],
                                                                          ws["p99_ms"]))
    t.append(judge("file written -> kernel within 5 ms p99, 1,000 deployments (before: 47 ms)",
                   value(ctl, "weight_change_written_p99_ms"), lambda v: v <= 5, "<= 5 ms", why,
                   " ms", None, "; ".join(ctx) or None))
    fw = ctl.get("_raw", {}).get("ferryctl_weights") or {}
    # A process start is the machine's, not ferryctl's: on this VM fork+exec+wait of
    # /bin/true alone takes ~3 ms. So both are shown, and the target is judged on what
    # ferryctl adds above a ferryctl that does nothing, run right after each change.
    why = "ferryctl opens four pins, resolves the deployment through ferry_svc_names (its ids " \
          "checked in ferry_svc_meta) and writes its one selector"
    ctx = []
    for k, label in (("p50_ms", "end to end p50"), ("p99_ms", "p99"),
                     ("floor_p50_ms", "`ferryctl --help` fork to exit p50"),
                     ("above_floor_p99_ms", "above the floor p99")):
        if fw.get(k) is not None:
            ctx.append("%s %.1f ms" % (label, fw[k]))
    t.append(judge("ferryctl weights -> kernel within 1 ms above a process start (median "
                   "against `ferryctl --help` interleaved), 1,000 deployments",
                   value(ctl, "ferryctl_weights_above_floor_p50_ms"), lambda v: v <= 1, "<= 1 ms",
                   why, " ms", None, "; ".join(ctx) or None))
    s10 = value(ctl, "sync_10000_ms")
    per = value(ctl, "per_service_sync_ms")
    why = "linear at %s per deployment" % ("%.2f ms" % per if per is not None else "?")
    if s10 is None and "sync_10000_skipped" in ctl:
        why = "not run: " + ctl["sync_10000_skipped"] + "; " + why
    runs = (ctl.get("sync_10000_ms") or {}).get("runs") if isinstance(ctl.get("sync_10000_ms"),
                                                                      dict) else None
    t.append(judge("10,000 deployments synced in < 2 s (median of the runs)", s10,
                   lambda v: v < 2000, "< 2000 ms", why, " ms", None,
                   "runs %s ms" % ", ".join("%.0f" % x for x in runs if x is not None)
                   if runs else None))
    lin = ratio(ctl, "linearity_bpf_bytes")
    t.append(judge("BPF memory linear in deployments (marginal cost ratio 0.8-1.25)", lin,
                   lambda r: 0.8 <= r <= 1.25, "0.8..1.25", "per-service cost changes with scale",
                   "x"))
    return t


# ------------------------------------------------------------------- table

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return "%.0f" % v
        return "%.3g" % v
    return str(v)


def print_pkt(s):
    if not s or "missing" in s:
        print("pkt_ns: %s" % ((s or {}).get("missing") or "not run"))
        return
    b = s.get("_baselines", {})
    print("per packet (test_run; sampling at the shipped default unless 'unsampled'); baselines, "
          "median of runs: " + ", ".join("%s %.1f ns %s" % (k, v["median_ns"],
                                                             [round(x, 1) for x in v["runs_ns"]])
                                         for k, v in b.items()))
    print("%-38s %-6s %9s %9s %8s  %s" % ("case", "mode", "ns/pkt", "+nop ns", "x floor",
                                          "verdict"))
    for k, e in s.items():
        if k.startswith("_") or "mode" not in e:
            continue
        print("%-38s %-6s %9s %9s %8s  %s" % (k, e["mode"], fmt(e["value"]),
                                              fmt(e.get("above_nop_ns")), fmt(e["ratio"]),
                                              e.get("verdict_name", "")))
    for k in ("ferry_vs_katran_established", "ferry_vs_katran_new_flow",
              "ferry_vs_katran_connection"):
        e = s.get(k)
        if e:
            print("%s: ferry %.0f ns vs Katran %.0f ns above the empty program (calls mode): "
                  "%.2fx%s" % (k, e["value"], e["baseline"], e["ratio"],
                               " (medians of %d interleaved runs; ferry %s, Katran %s)" % (
                                   len(e["runs"]), [round(x) for x in e["runs"]],
                                   [round(x) for x in e["katran_runs"]])
                               if e.get("katran_runs") else ""))
            print("    " + e.get("note", "").replace("; Katran: ", "\n    Katran: "))
    if "_katran_skipped" in s:
        print("katran: skipped: %s" % s["_katran_skipped"])
    print()


def rng(e):
    if not isinstance(e, dict) or e.get("value") is None:
        return "-"
    if e.get("min") is None:
        return fmt(e["value"])
    return "%s [%s..%s]" % (fmt(e["value"]), fmt(e["min"]), fmt(e["max"]))


def print_pps(s, prefix_fmt, names, title):
    rows = []
    for n in names:
        for sink in ("xdp", "sock"):
            k = prefix_fmt % (n, sink)
            w = s.get(k + "_mpps_wall")
            if not w:
                continue
            c = s.get(k + "_mpps_per_cpu")
            d = s.get(k + "_delivered")
            node = s.get(k + "_node_mpps_per_cpu")
            vi = s.get(k + "_vs_iptables_per_cpu") or s.get(k + "_node_vs_iptables")
            rows.append((n, sink, rng(w), rng(c), fmt(c and c.get("ratio")), rng(node),
                         fmt(vi and vi.get("ratio")), fmt(d and d.get("value")),
                         "NOISE" if (c and c.get("noise")) else ""))
    if not rows:
        return
    print(title)
    print("%-10s %-5s %-24s %-24s %8s %-24s %8s %6s" % (
        "case", "sink", "Mpps wall [min..max]", "Mpps/CPU-s [min..max]", "x direct",
        "node Mpps/CPU-s", "x iptab", "deliv"))
    for r in rows:
        print("%-10s %-5s %-24s %-24s %8s %-24s %8s %6s %s" % r)
    print()


def print_http(s, names, prefix, title):
    rows = []
    for n in names:
        for mode in ("keepalive", "close", "single"):
            e = s.get("%s%s_%s_rps" % (prefix, n, mode))
            if not e:
                continue
            p50 = s.get("%s%s_%s_p50_us" % (prefix, n, mode))
            p99 = s.get("%s%s_%s_p99_us" % (prefix, n, mode))
            rows.append((n, mode, rng(e), fmt(e.get("ratio")),
                         fmt(e.get("ratio_median_of_rounds")), fmt(p50 and p50["value"]),
                         fmt(p99 and p99["value"]), "NOISE: above the floor" if e.get("noise") else ""))
    if not rows:
        return
    print(title)
    print("%-16s %-9s %-28s %8s %9s %8s %8s" % ("case", "mode", "req/s median [min..max]",
                                              "x floor", "x (rounds)", "p50 us", "p99 us"))
    for r in rows:
        print("%-16s %-9s %-28s %8s %9s %8s %8s %s" % r)
    print()


def print_table(doc):
    print()
    print_pkt(doc.get("pkt_ns"))
    if "packet-socket" in (doc.get("pps") or {}).get("_generator_modes", []):
        print("pps generator: packet socket (this kernel refuses live-frame test_run)")
    print_pps(doc.get("pps") or {}, "%s_%s", ["generator", "direct", "ferry", "ferry_tx",
                                              "ferry_xdp", "ferry_tc", "iptables"],
              "packet rate, gateway mode (CPU time: %s)" % doc.get("cpu_time_basis", "?"))
    pod = doc.get("pod") or {}
    for where in ("local", "remote"):
        print_pps(pod, "pod_" + where + "_%s_%s", ["direct", "ferry", "ferry_peer", "iptables"],
                  "packet rate, pod mode, %s backend" % (
                      "same-node" if where == "local" else "second-node"))
    print_http(doc.get("http") or {}, ["direct", "ferry", "ferry_xdp", "ferry_tc", "haproxy",
                                       "iptables"], "",
               "HTTP, gateway mode (pinned: wrk on CPU %s, servers on CPU %s)" % (
                   doc["machine"].get("pinning", {}).get("client_cpu"),
                   doc["machine"].get("pinning", {}).get("server_cpu")))
    for where in ("local", "remote"):
        print_http(pod, ["direct_" + where, "ferry_" + where, "ferry_peer_" + where,
                         "iptables_" + where], "pod_",
                   "HTTP, pod mode, %s backend" % ("same-node" if where == "local"
                                                   else "second-node"))
    for name, e in sorted((doc.get("ferryd_cpu") or {}).items()):
        print("ferryd's own CPU, %-16s %.2f %% of one CPU (median of %d rounds, %.2f-%.2f)" % (
            name, e["percent_of_one_cpu"] or 0, len(e["cpu_ms"]), e["percent_min"] or 0,
            e["percent_max"] or 0))
    c = doc.get("control") or {}
    for k, e in c.items():
        if k.startswith("_"):
            continue
        if isinstance(e, dict) and "value" in e:
            print("control  %-34s %12s %-10s" % (k[:34], fmt(e["value"]), e["unit"][:10]))
        else:
            print("control  %-34s %s" % (k, e))
    print()
    print("%-78s %-10s %-10s %s" % ("target", "want", "got", "verdict"))
    print("-" * 120)
    for t in doc["targets"]:
        print("%-78s %-10s %-10s %s%s" % (t["target"][:78], t["want"], t["got"] or "-",
                                          t["verdict"],
                                          (": " + t["reason"]) if t["reason"] else ""))
        if t.get("spread"):
            print("%-78s %s" % ("", t["spread"]))
    print()


# ---------------------------------------------------------------- markdown

def md_rng(e, f="%.3g"):
    if not isinstance(e, dict) or e.get("value") is None:
        return "-"
    v = f % e["value"]
    if e.get("min") is not None and e.get("n", 1) > 1:
        v += " (%s-%s)" % (f % e["min"], f % e["max"])
    return v


def md_ratio(e):
    if not isinstance(e, dict) or e.get("ratio") is None:
        return "-"
    r = "%.2fx" % e["ratio"]
    pr = [x for x in e.get("ratio_per_round") or [] if x is not None]
    if len(pr) > 1:
        r += " (%.2f-%.2f)" % (min(pr), max(pr))
    if e.get("noise"):
        r += " noise"
    return r


def markdown(doc):
    """The results as Markdown tables, for docs/performance.md."""
    m = doc["machine"]
    out = ["Run: %s CPUs (%s), Linux %s, %s rounds%s; load average %s at the start, %s at the "
           "end; %.0f s. %s" % (m.get("nproc"), m.get("cpu"), m.get("kernel"), m.get("rounds"),
                                " (quick mode)" if m.get("quick") else "",
                                " ".join(m.get("loadavg_at_start", [])),
                                " ".join(m.get("loadavg_at_end", [])), doc.get("elapsed_s") or 0,
                                ("Source: " + m["source_note"] + ".") if m.get("source_note")
                                else "Tree: %s%s." % ((m.get("git_revision") or "?")[:12],
                                                      " (dirty)" if m.get("git_dirty") else "")),
           "", "CPU time: " + doc.get("cpu_time_basis", "?") + ".", ""]
    pkt = doc.get("pkt_ns") or {}
    if pkt and "missing" not in pkt:
        b = pkt.get("_baselines", {})
        out += ["#### Per packet", "",
                "Baselines (median of %d runs each, all runs in `results.json`): %s." % (
                    len(next(iter(b.values()))["runs_ns"]) if b else 0,
                    ", ".join("%s %.1f ns (%.1f-%.1f)" % (k, v["median_ns"], min(v["runs_ns"]),
                                                         max(v["runs_ns"])) for k, v in b.items())),
                "", "| case | mode | ns/packet | above empty program | x floor (same mode) | verdict |",
                "|---|---|---:|---:|---:|---|"]
        for k, e in pkt.items():
            if k.startswith("_") or "mode" not in e:
                continue
            out.append("| %s | %s | %.0f | %.0f | %.2f | %s |" % (
                k, e["mode"] + (" (repeat impossible: TTL)" if e.get("repeat_fallback") else ""),
                e["value"], e.get("above_nop_ns") or 0, e.get("ratio") or 0,
                e.get("verdict_name", "")))
        out.append("")
        for k in ("ferry_vs_katran_established", "ferry_vs_katran_new_flow",
                  "ferry_vs_katran_connection"):
            e = pkt.get(k)
            if e:
                out.append("- %s: ferry %.0f ns, Katran %.0f ns above the empty program: %s. %s" % (
                    k.replace("ferry_vs_katran_", "").replace("_", " "), e["value"], e["baseline"],
                    md_ratio(e), (e.get("note") or "").replace("; Katran: ", ". Katran: ")))
        if pkt.get("_katran_skipped"):
            out.append("- Katran: skipped (%s)." % pkt["_katran_skipped"])
        out.append("")

    def pps_table(sec, fmtk, names, title, node):
        rows = []
        for n in names:
            for sink in ("xdp", "sock"):
                k = fmtk % (n, sink)
                if k + "_mpps_wall" not in sec:
                    continue
                vi = sec.get(k + "_node_vs_iptables" if node else k + "_vs_iptables_per_cpu")
                rows.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    n, "XDP counter" if sink == "xdp" else "socket", md_rng(sec[k + "_mpps_wall"]),
                    md_rng(sec.get(k + "_mpps_per_cpu")), md_ratio(sec.get(k + "_mpps_per_cpu")),
                    md_rng(sec.get(k + "_node_mpps_per_cpu")) if node else "-", md_ratio(vi),
                    "%.0f %%" % (100 * sec[k + "_delivered"]["value"])
                    if sec.get(k + "_delivered", {}).get("value") is not None else "-"))
        if rows:
            out.extend(["#### " + title, "",
                        "| case | sink | Mpps wall | Mpps per CPU-s | vs direct (per CPU-s) | node only, "
                        "Mpps per CPU-s | vs iptables (per CPU-s%s) | delivered |" % (
                            ", node only with XDP sinks" if node else ""),
                        "|---|---|---:|---:|---:|---:|---:|---:|"] + rows + [""])

    pps = doc.get("pps") or {}
    pps_table(pps, "%s_%s", ["direct", "ferry", "ferry_tx", "ferry_xdp", "ferry_tc", "iptables"],
              "Packet rate, gateway mode (median (min-max) over rounds)", True)
    if "packet-socket" in pps.get("_generator_modes", []):
        out += ["The generator sent from a packet socket (this kernel refuses live-frame "
                "test_run): wall-clock rates may be the generator's; the node-only figures "
                "subtract its measured cost.", ""]
    if pps.get("_ferry_counters"):
        out += ["ferry's counters over its packet-rate runs: " + ", ".join(
            "%s %d" % kv for kv in sorted(pps["_ferry_counters"].items())) + ".", ""]
    pod = doc.get("pod") or {}
    for where in ("local", "remote"):
        pps_table(pod, "pod_" + where + "_%s_%s", ["direct", "ferry", "ferry_peer", "iptables"],
                  "Packet rate, pod mode, %s backend" % ("same-node" if where == "local"
                                                         else "second-node"), False)

    def http_table(sec, names, prefix, title):
        rows = []
        for n in names:
            for mode in ("keepalive", "close", "single"):
                e = sec.get("%s%s_%s_rps" % (prefix, n, mode))
                if not e:
                    continue
                p50 = sec.get("%s%s_%s_p50_us" % (prefix, n, mode)) or {}
                p99 = sec.get("%s%s_%s_p99_us" % (prefix, n, mode)) or {}
                syn = [x for x in sec.get("%s%s_%s_syn_retrans" % (prefix, n, mode)) or []
                       if x is not None]
                rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    n, mode, md_rng(e, "%.0f"), md_ratio(e),
                    "%.0f" % p50["value"] if p50.get("value") is not None else "-",
                    "%.0f" % p99["value"] if p99.get("value") is not None else "-",
                    "%d" % sum(syn) if syn else "-"))
        if rows:
            out.extend(["#### " + title, "",
                        "| case | mode | requests/s, median (min-max) | vs direct (per-round range) | "
                        "p50 us | p99 us | SYN retries |", "|---|---|---:|---:|---:|---:|---:|"] +
                       rows + ["", "SYN retries: SYNs the client retransmitted, summed over the "
                               "rounds (each costs its connection a second).", ""])

    http_table(doc.get("http") or {}, ["direct", "ferry", "ferry_xdp", "ferry_tc", "haproxy",
                                       "iptables"], "", "HTTP, gateway mode")
    for where in ("local", "remote"):
        http_table(pod, ["direct_" + where, "ferry_" + where, "ferry_peer_" + where,
                         "iptables_" + where], "pod_", "HTTP, pod mode, %s backend" % (
                             "same-node" if where == "local" else "second-node"))
    fcpu = doc.get("ferryd_cpu") or {}
    if fcpu:
        out += ["#### ferryd's own CPU", "",
                "User and system time of ferryd (all threads) from the end of its start-up to the "
                "end of its case's runs, per round; not in the per-CPU-second packet rates, which "
                "count the measured CPU only.", "",
                "| case | CPU ms per round, median (min-max) | wall s per round | % of one CPU, "
                "median (min-max) |", "|---|---:|---:|---:|"]
        for name, e in sorted(fcpu.items()):
            out.append("| %s | %.0f (%d-%d) | %.0f | %.2f (%.2f-%.2f) |" % (
                name, median(e["cpu_ms"]), min(e["cpu_ms"]), max(e["cpu_ms"]), median(e["wall_s"]),
                e["percent_of_one_cpu"] or 0, e["percent_min"] or 0, e["percent_max"] or 0))
        out.append("")
    ctl = doc.get("control") or {}
    rows = ["| %s | %s %s%s |" % (k, "%.4g" % e["value"] if isinstance(e.get("value"), (int, float))
                                  else "-", e.get("unit", ""),
                                  " (min-max %.4g-%.4g; %.3gx %s)" % (e["min"], e["max"], e["ratio"],
                                                                     e.get("baseline_name"))
                                  if e.get("runs") and e.get("ratio") is not None else "")
            for k, e in ctl.items() if not k.startswith("_") and isinstance(e, dict) and "value" in e]
    if rows:
        out += ["#### Control plane", "", "| figure | value |", "|---|---:|"] + rows + [""]
    out += ["#### Targets", "", "| target | want | got | verdict | why / spread |", "|---|---|---|---|---|"]
    for t in doc["targets"]:
        why = "; ".join(x for x in (t.get("reason"), t.get("spread")) if x)
        out.append("| %s | %s | %s | %s | %s |" % (t["target"], t["want"], t["got"] or "-",
                                                   t["verdict"], why.replace("|", "/")))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--elapsed", type=float)
    ap.add_argument("--markdown", help="also write the results as Markdown tables here")
    a = ap.parse_args()
    machine = load(os.path.join(a.raw, "machine.json"), {})
    machine.update(load(os.path.join(a.raw, "machine_end.json"), {}))
    acct = machine.get("irq_time_accounting", "unknown")
    if acct == "y":
        basis = ("CONFIG_IRQ_TIME_ACCOUNTING=y: softirq time is accounted apart from tasks, so "
                 "the generator thread's CPU time misses it; /proc/stat's softirq time of the "
                 "measured CPU is added")
    elif acct == "n":
        basis = ("CONFIG_IRQ_TIME_ACCOUNTING is off: a softirq's time is charged to the task it "
                 "ran in, so the generator thread's CPU time (plus ksoftirqd's on that CPU) "
                 "includes the node's and the backends' packet processing")
    else:
        basis = "kernel config not readable: CPU time is the generator thread's plus ksoftirqd's"
    pkt = pkt_section(a.raw)
    pps = pps_section(a.raw, acct)
    pod = pod_pps_section(a.raw, acct)
    pod.update(pod_http_section(a.raw))
    http = http_section(a.raw)
    ctl = control_section(a.raw)
    doc = {"machine": machine, "elapsed_s": a.elapsed, "cpu_time_basis": basis,
           "pkt_ns": pkt, "pps": pps, "http": http, "pod": pod, "control": ctl,
           "ferryd_cpu": ferryd_cpu_section(a.raw)}
    doc["targets"] = targets(pkt if "missing" not in pkt else {}, pps, http, pod, ctl, machine)
    tmp = os.path.join(os.path.dirname(os.path.abspath(a.out)), ".results.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, a.out)
    m = machine
    print("machine: %s CPUs, %s, Linux %s, git %s%s; load average %s at start, %s at end; "
          "%.0f s" % (m.get("nproc"), m.get("cpu"), m.get("kernel"),
                      (m.get("git_revision") or "?")[:12], " (dirty)" if m.get("git_dirty") else "",
                      " ".join(m.get("loadavg_at_start", [])), " ".join(m.get("loadavg_at_end", [])),
                      a.elapsed or 0))
    if m.get("source_note"):
        print("source: %s" % m["source_note"])
    print_table(doc)
    print("wrote %s" % a.out)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(markdown(doc))
        print("wrote %s" % a.markdown)


if __name__ == "__main__":
    main()
