#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Writes N SeldonDeployments for the control-plane benchmark, fast.

  gen_deployments.py --dir D --services N [--backends-per-predictor 5]

Deployment s (bench/fxs<s>) has VIP 198.18.150.(1 + s // 100):(8000 + s % 100), two
predictors, main (traffic 90) and canary (10), each with its own EndpointSlice of
--backends-per-predictor ready endpoints on consecutive addresses from 198.18.160.1
(never sent traffic: the control plane only builds tables for them). The YAML has the
shape vmtests/bin/manifests.py writes; unlike it, nothing is fsynced, so 30,000 files
take seconds, not minutes.
"""
import argparse
import ipaddress
import os


def deployment(name, vip, weights):
    preds = "".join(
        "  - name: %s\n    replicas: 5\n    traffic: %d\n"
        "    graph: {name: classifier, type: MODEL, implementation: SKLEARN_SERVER, modelUri: gs://seldon-models/sklearn/iris}\n" % (p, w)
        for p, w in weights)
    return ("apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata:\n"
            "  name: %s\n  namespace: bench\n  annotations:\n    ferry.io/vip: \"%s\"\n"
            "spec:\n  name: %s\n  predictors:\n%s" % (name, vip, name, preds))


def endpoint_slice(name, pred, addrs):
    eps = "".join("- addresses: [\"%s\"]\n  conditions: {ready: true, serving: true, "
                  "terminating: false}\n" % a for a in addrs)
    return ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
            "  name: %s-%s-fx\n  namespace: bench\n  labels:\n"
            "    kubernetes.io/service-name: %s-%s\naddressType: IPv4\n"
            "ports:\n- name: http\n  port: 9000\n  protocol: TCP\nendpoints:\n%s"
            % (name, pred, name, pred, eps))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--services", type=int, required=True)
    ap.add_argument("--backends-per-predictor", type=int, default=5)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    base = ipaddress.ip_address("198.18.160.1")
    vbase = ipaddress.ip_address("198.18.150.1")
    n = 0
    for s in range(a.services):
        name = "fxs%05d" % s
        vip = "%s:%d" % (vbase + s // 100, 8000 + s % 100)
        for pred in ("main", "canary"):
            addrs = [str(base + n + i) for i in range(a.backends_per_predictor)]
            n += a.backends_per_predictor
            with open(os.path.join(a.dir, "%s-%s.yaml" % (name, pred)), "w") as f:
                f.write(endpoint_slice(name, pred, addrs))
        with open(os.path.join(a.dir, "%s.yaml" % name), "w") as f:
            f.write(deployment(name, vip, (("main", 90), ("canary", 10))))


if __name__ == "__main__":
    main()
