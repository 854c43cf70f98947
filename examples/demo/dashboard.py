#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""The demo's live view: one block per second with, per predictor, the configured
weight, the observed share of new connections, requests/s, p50/p99 latency and errors,
and the canary analysis' state with the figures of its last window.

Latency and the connection split come from ferryd's /metrics when it has them (the
kernel measured them: request first byte to response first byte, sampled by the BPF
programs), computed from the change of the histogram buckets over the last second.
Until ferryd serves them, the load client's own measurements are shown instead,
labelled "client". Standard library only.
"""
import argparse
import json
import os
import re
import sys
import time
import urllib.request

# ferryd's metric names, in one place: if they change, change them here.
KERNEL_LATENCY_HIST = "ferry_request_duration_seconds"
KERNEL_NEW_CONNS = "ferry_new_connections_total"
KERNEL_HTTP = "ferry_http_responses_total"
PRED_LABELS = ("predictor_name", "predictor")
DEPLOY_LABELS = ("deployment_name", "deployment")

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """-> list of (name, {label: value}, float)."""
    out = []
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = LINE.match(ln)
        if not m:
            continue
        try:
            v = float(m.group(4))
        except ValueError:
            continue
        out.append((m.group(1), dict(LABEL.findall(m.group(3) or "")), v))
    return out


def label(lbl, names):
    for n in names:
        if n in lbl:
            return lbl[n]
    return None


def kernel_view(samples, deployment):
    """-> {predictor: {"conns": n, "buckets": {le: cum}, "5xx": n}} for one deployment."""
    view = {}
    for name, lbl, v in samples:
        if label(lbl, DEPLOY_LABELS) not in (deployment, None):
            continue
        pred = label(lbl, PRED_LABELS)
        if not pred:
            continue
        p = view.setdefault(pred, {"conns": 0.0, "buckets": {}, "5xx": 0.0})
        if name == KERNEL_NEW_CONNS:
            p["conns"] += v
        elif name == KERNEL_LATENCY_HIST + "_bucket" and "le" in lbl:
            le = float("inf") if lbl["le"] == "+Inf" else float(lbl["le"])
            p["buckets"][le] = p["buckets"].get(le, 0.0) + v
        elif name == KERNEL_HTTP and lbl.get("class") == "5xx":
            p["5xx"] += v
    return view


def hist_quantile(q, buckets):
    """Prometheus' histogram_quantile over {le: cumulative count}."""
    les = sorted(buckets)
    if not les or buckets[les[-1]] <= 0:
        return None
    rank = q * buckets[les[-1]]
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = buckets[le]
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return les[-1]


def weights_from_manifest(path):
    """Configured traffic per predictor from the SeldonDeployment file (as edited)."""
    w, cur = {}, None
    try:
        with open(path) as f:
            for ln in f:
                m = re.match(r"^  - name:\s*(\S+)", ln)
                if m:
                    cur = m.group(1).strip("\"'")
                m = re.match(r"^    traffic:\s*(\d+)", ln)
                if m and cur:
                    w[cur] = int(m.group(1))
    except OSError:
        pass
    return w


def last_stats(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError, IndexError):
        return None


def canary_line(path, deployment):
    """The canary analysis from ferryd's state file: state, step, weight, last decision."""
    try:
        with open(path) as f:
            deps = json.load(f)["deployments"]
    except (OSError, ValueError, KeyError):
        return None
    d = next((v for k, v in deps.items() if k.endswith("/" + deployment)), None)
    if not d:
        return None
    head = "  canary analysis: %s" % d["state"].upper()
    if d.get("nsteps"):
        head += " step %d/%d" % (d["step"], d["nsteps"])
    if d.get("has_weight"):
        head += ", %s at %.0f%% of new connections" % (d["canary"], d["weight"])
    ws = d.get("windows") or []
    if not ws:
        return head + " (first window running)"
    w = ws[-1]

    def f(v, fmt):
        return fmt % v if isinstance(v, (int, float)) else "-"
    last = ("  last window (%ss): %s (%s): p50 canary %s vs main %s ms (x%s), errors %s%% vs %s%%,"
            " U test p=%s, %d/%d requests" % (
                d.get("interval_s"), w["verdict"].upper(), w["reason"],
                f(w.get("canary_p50_ms"), "%.1f"), f(w.get("baseline_p50_ms"), "%.1f"),
                f(w.get("p50_ratio"), "%.2f"), f(100 * w["canary_error_rate"], "%.2f"),
                f(100 * w["baseline_error_rate"], "%.2f"), f(w.get("u_test_p"), "%.2g"),
                w["canary_requests"], w["baseline_requests"]))
    return head + "\n" + last


def ms(v):
    return "%7.1f ms" % (v * 1000) if v is not None else "      -   "


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics-url", default="http://127.0.0.1:9464/metrics")
    ap.add_argument("--stats-file", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--deployment", default="iris")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--phase-file", help="one line: what the demo is doing now")
    ap.add_argument("--canary-state", help="ferryd's canary state file (docs/canary.md)")
    a = ap.parse_args()

    prev, t_start = None, time.time()
    tick = 0
    while True:
        tick += 1  # absolute schedule: the blocks do not drift behind the clock
        time.sleep(max(0.0, t_start + tick * a.interval - time.time()))
        try:
            with urllib.request.urlopen(a.metrics_url, timeout=0.9) as r:
                cur = kernel_view(parse_prometheus(r.read().decode()), a.deployment)
        except Exception:  # noqa: BLE001 - ferryd may be starting or without metrics
            cur = None
        st = last_stats(a.stats_file) or {"requests": 0, "errors": 0, "predictors": {},
                                          "latency": {}}
        weights = weights_from_manifest(a.manifest)
        phase = ""
        if a.phase_file:
            try:
                phase = open(a.phase_file).read().strip()
            except OSError:
                pass
        preds = list(weights) or sorted(st["predictors"])
        rows, lat_src, share_src = [], "client", "client"
        dk = {}
        if cur is not None and prev is not None:
            for p in preds:
                c, o = cur.get(p), prev.get(p)
                if not c or not o:
                    continue
                b = {le: c["buckets"].get(le, 0) - o["buckets"].get(le, 0) for le in c["buckets"]}
                dk[p] = {"conns": c["conns"] - o["conns"], "buckets": b,
                         "5xx": c["5xx"] - o["5xx"]}
        tot_k = sum(v["conns"] for v in dk.values())
        tot_c = sum(st["predictors"].values())
        for p in preds:
            k = dk.get(p)
            if tot_k > 0:
                share, share_src = (k["conns"] / tot_k if k else 0.0), "kernel"
            else:
                share = st["predictors"].get(p, 0) / tot_c if tot_c else 0.0
            p50 = p99 = None
            if k and any(v > 0 for v in k["buckets"].values()):
                p50, p99 = hist_quantile(0.5, k["buckets"]), hist_quantile(0.99, k["buckets"])
                lat_src = "kernel"
            else:
                cl = st["latency"].get(p) or {}
                p50, p99 = cl.get("p50"), cl.get("p99")
            errs = int(k["5xx"]) if k else 0
            rows.append("  %-8s %5s%%   %6.1f%%   %7.1f   %s   %s   %5d" % (
                p, weights.get(p, "?"), share * 100, st["predictors"].get(p, 0) / a.interval,
                ms(p50), ms(p99), errs))
        if share_src == "kernel" and lat_src == "client":
            src = "split: kernel; latency: client-measured (no kernel samples this second)"
        elif lat_src == "kernel":
            src = "split and latency measured by the kernel (%s)" % KERNEL_LATENCY_HIST
        else:
            src = "client-measured (no kernel numbers for this second yet)"
        print("\n[%5.1fs] %s" % (time.time() - t_start, phase))
        print("  %-8s %6s %10s %9s %10s   %10s   %5s" % ("predictor", "weight", "new conns",
                                                          "req/s", "p50", "p99", "5xx"))
        print("\n".join(rows))
        print("  client errors this second: %d   | %s" % (st.get("errors", 0), src))
        cl = canary_line(a.canary_state, a.deployment) if a.canary_state else None
        if cl:
            print(cl)
        sys.stdout.flush()
        if cur is not None:
            prev = cur


if __name__ == "__main__":
    main()
