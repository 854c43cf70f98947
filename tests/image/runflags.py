#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Translates the ferryd container of deploy/kubernetes/daemonset.yaml into
`podman run` / `docker run` flags, so that the image test runs ferryd with
exactly the privileges, mounts and environment the DaemonSet declares (read
from the manifest, not written a second time).

Flags mirror what a Kubernetes node (containerd, CRI-O) does, not the
engine's defaults: a read-only root gets no tmpfs on /run
(--read-only-tmpfs=false), so a write there fails here as it would in a
cluster; mount propagation maps HostToContainer to rslave, Bidirectional to
rshared, None to rprivate.

Usage: runflags.py DAEMONSET.yaml --netns PATH --emptydir-root DIR
                   [--drop-cap NAME] [--engine podman|docker] [--node-name NAME]
Prints one argument per line: the flags, then the image name. Container
args are not printed (the test gives its own: no API server runs here).
Fails, naming the field, on anything it cannot translate faithfully.
"""
import argparse
import json
import os
import sys

import yaml

PROPAGATION = {"None": "rprivate", "HostToContainer": "rslave", "Bidirectional": "rshared"}


def die(msg):
    print("runflags.py: %s" % msg, file=sys.stderr)
    sys.exit(1)


def mem_bytes(q):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}
    for u, m in units.items():
        if str(q).endswith(u):
            return int(str(q)[: -len(u)]) * m
    return int(q)


def runtime_default(where):
    """containerd's and Docker's RuntimeDefault allow bpf(2) to a container
    holding CAP_BPF and perf_event_open(2) to one holding CAP_PERFMON; the
    profile of podman 4.3 (Debian 12's containers-common) still allows them
    with CAP_SYS_ADMIN only, which no cluster asks for. Its profile, with the
    two syscalls given the rules a node's runtime has, written to WHERE."""
    src = "/usr/share/containers/seccomp.json"
    try:
        with open(src) as f:
            prof = json.load(f)
    except OSError as e:
        die("%s: %s (podman's default seccomp profile)" % (src, e))
    moved = {"bpf": "CAP_BPF", "perf_event_open": "CAP_PERFMON"}
    rules = []
    for r in prof["syscalls"]:
        names = [n for n in r["names"] if n not in moved]
        if names:
            r["names"] = names
            rules.append(r)
    for name, cap in moved.items():
        for c in ("CAP_SYS_ADMIN", cap):
            rules.append({"names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [c]}})
    prof["syscalls"] = rules
    path = os.path.join(where, "seccomp-runtime-default.json")
    os.makedirs(where, exist_ok=True)
    with open(path, "w") as f:
        json.dump(prof, f)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("daemonset")
    ap.add_argument("--netns", required=True, help="the node's network namespace (hostNetwork)")
    ap.add_argument("--emptydir-root", required=True, help="host directory for emptyDir volumes")
    ap.add_argument("--drop-cap", action="append", default=[],
                    help="leave out this added capability (least-privilege checks)")
    ap.add_argument("--engine", default="podman", choices=("podman", "docker"))
    ap.add_argument("--node-name", default=os.uname().nodename)
    a = ap.parse_args()

    with open(a.daemonset) as f:
        docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "DaemonSet"]
    if len(docs) != 1:
        die("%s: expected one DaemonSet, found %d" % (a.daemonset, len(docs)))
    pod = docs[0]["spec"]["template"]["spec"]
    ctrs = [c for c in pod["containers"] if c["name"] == "ferryd"]
    if len(ctrs) != 1:
        die("no container named ferryd")
    c = ctrs[0]
    out = []

    if pod.get("hostNetwork") is not True:
        die("spec.hostNetwork is not true: the test only knows how to run ferryd on a node's network")
    out.append("--network=ns:%s" % a.netns if a.engine == "podman" else "--network=host")
    if pod.get("hostPID") or pod.get("hostIPC"):
        die("hostPID/hostIPC are not translated")

    sc = c.get("securityContext") or {}
    if sc.get("privileged"):
        out.append("--privileged")
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        out.append("--cap-drop=%s" % ("all" if cap == "ALL" else "CAP_" + cap))
    for name in a.drop_cap:
        if name not in (caps.get("add") or []):
            die("--drop-cap %s: the DaemonSet does not add it" % name)
    for cap in caps.get("add") or []:
        if cap not in a.drop_cap:
            out.append("--cap-add=CAP_%s" % cap)
    if sc.get("readOnlyRootFilesystem"):
        out.append("--read-only")
        if a.engine == "podman":
            # containerd and CRI-O mount nothing writable on a read-only root.
            out.append("--read-only-tmpfs=false")
    if sc.get("allowPrivilegeEscalation") is False:
        out.append("--security-opt=no-new-privileges")
    if "runAsUser" in sc:
        user = str(sc["runAsUser"])
        if "runAsGroup" in sc:
            user += ":%s" % sc["runAsGroup"]
        out.append("--user=%s" % user)
    if sc.get("runAsNonRoot"):
        die("runAsNonRoot is not translated")
    seccomp = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        out.append("--security-opt=seccomp=unconfined")
    elif seccomp != "RuntimeDefault":
        die("seccompProfile.type %r is not translated" % seccomp)
    elif a.engine == "podman":
        out.append("--security-opt=seccomp=%s" % runtime_default(a.emptydir_root))
    # docker: its default profile is the one containerd's RuntimeDefault
    # follows (bpf with CAP_BPF, perf_event_open with CAP_PERFMON).

    lim = (c.get("resources") or {}).get("limits") or {}
    if "memory" in lim:
        # BPF maps are charged to the container's memory cgroup (5.11+).
        out.append("--memory=%d" % mem_bytes(lim["memory"]))

    vols = {v["name"]: v for v in pod.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        v = vols.get(m["name"])
        if v is None:
            die("volumeMount %r names no volume" % m["name"])
        opts = ["ro"] if m.get("readOnly") else ["rw"]
        prop = m.get("mountPropagation", "None")
        opts.append(PROPAGATION[prop])
        if "hostPath" in v:
            src = v["hostPath"]["path"]
            typ = v["hostPath"].get("type", "")
            if typ == "DirectoryOrCreate":
                os.makedirs(src, exist_ok=True)
            elif typ == "Directory" and not os.path.isdir(src):
                die("volume %r: hostPath %s is not a directory (type: Directory)" % (m["name"], src))
            elif typ not in ("", "Directory"):
                die("volume %r: hostPath.type %s is not translated" % (m["name"], typ))
        elif "emptyDir" in v:
            # A fresh directory per container start, like a pod's emptyDir.
            src = os.path.join(a.emptydir_root, m["name"])
            os.makedirs(src, exist_ok=True)
        else:
            die("volume %r: only hostPath and emptyDir are translated" % m["name"])
        out.append("--volume=%s:%s:%s" % (src, m["mountPath"], ",".join(opts)))

    # The downward API's fields as the kubelet would fill them for this node's pod.
    fields = {"spec.nodeName": a.node_name,
              "metadata.name": "%s-%s" % (docs[0]["metadata"]["name"], a.node_name),
              "metadata.namespace": docs[0]["metadata"].get("namespace", "default")}
    for e in c.get("env") or []:
        if "value" in e:
            out.append("--env=%s=%s" % (e["name"], e["value"]))
        elif (e.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") in fields:
            out.append("--env=%s=%s" % (e["name"], fields[e["valueFrom"]["fieldRef"]["fieldPath"]]))
        else:
            die("env %r: only value and fieldRef %s are translated" % (e["name"], ", ".join(fields)))

    out.append(c["image"])
    print("\n".join(out))


if __name__ == "__main__":
    main()
