#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Static checks of the Kubernetes packaging (deploy/Dockerfile,
# deploy/kubernetes/*.yaml) against the code and the docs: the manifests
# parse and have their required fields, the DaemonSet runs the image the
# Dockerfile builds, its capabilities are the ones docs/kubernetes.md
# justifies, bpffs is mounted, and the RBAC rules grant exactly the API
# resources user/source/k8s_*.c uses (the Role ferryd-canary, those of
# user/canary/canary_cluster.c). Nothing here needs a cluster or Docker.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP deploy/all: python3 is not installed" >&2
	echo "SKIP deploy/all"
	exit 0
fi

# Building and running the image is tests/image.sh's job (its skip, when no
# container runtime works, is the one tests/allowed-skips lists); this suite
# checks the packaging statically.

exec python3 - "$top" <<'PYEOF'
import os
import re
import sys

top = sys.argv[1]
kdir = os.path.join(top, "deploy", "kubernetes")
failed = False


def report(name, problems, skip=None):
    global failed
    if skip:
        sys.stderr.write("    SKIPPED: %s\n" % skip)
        print("SKIP deploy/%s" % name)
        return
    for p in problems:
        sys.stderr.write("    %s: %s\n" % (name, p))
    if problems:
        failed = True
    print("%s deploy/%s" % ("FAIL" if problems else "PASS", name))


def read(path):
    with open(os.path.join(top, path)) as f:
        return f.read()


files = sorted(f for f in os.listdir(kdir) if f.endswith((".yaml", ".yml")))
dockerfile = read("deploy/Dockerfile")
docs = read("docs/kubernetes.md")
# The Kubernetes client: user/source/k8s_*.c and its private header (resource table).
k8s_c = "".join(read(os.path.join("user", "source", f))
                for f in sorted(os.listdir(os.path.join(top, "user", "source")))
                if f.startswith("k8s") and f.endswith((".c", ".h")))

# The one image name: "# IMAGE: NAME" in the Dockerfile.
m = re.search(r"^# IMAGE: (\S+)$", dockerfile, re.M)
image = m.group(1) if m else None

try:
    import yaml
except ImportError:
    yaml = None

if yaml is None:
    # Minimal checks without a YAML parser (python3-yaml is not installed).
    why = "python3-yaml is not installed (apt-get install python3-yaml); structural checks skipped"
    for name in ("yaml_parses", "required_fields", "capabilities_match_docs", "rbac_matches_client",
                 "canary_rbac_matches_cluster", "names_consistent"):
        report(name, [], skip=why)
    ds = read("deploy/kubernetes/daemonset.yaml")
    problems = []
    if not image:
        problems.append("deploy/Dockerfile has no '# IMAGE: NAME' line")
    elif "image: %s\n" % image not in ds:
        problems.append("daemonset.yaml does not use image %s" % image)
    report("image_matches_dockerfile", problems)
    report("bpffs_mounted", [] if "path: /sys/fs/bpf" in ds else ["no hostPath /sys/fs/bpf"])
    sys.exit(1 if failed else 0)

# --- parse -----------------------------------------------------------------
docs_by_file = {}
problems = []
for f in files:
    try:
        with open(os.path.join(kdir, f)) as fh:
            docs_by_file[f] = [d for d in yaml.safe_load_all(fh) if d is not None]
    except yaml.YAMLError as e:
        problems.append("%s: %s" % (f, e))
    else:
        if not docs_by_file[f]:
            problems.append("%s: no document" % f)
report("yaml_parses", problems)

objs = [(f, d) for f, ds in docs_by_file.items() for d in ds]
problems = []
for f, d in objs:
    if not isinstance(d, dict):
        problems.append("%s: a document is not a mapping" % f)
        continue
    for field in ("apiVersion", "kind"):
        if not d.get(field):
            problems.append("%s: missing %s" % (f, field))
    if d.get("kind") == "Kustomization":
        listed = set(d.get("resources", []))
        for other in files:
            if other != f and other not in listed:
                problems.append("%s: resources does not list %s" % (f, other))
        continue
    if not (d.get("metadata") or {}).get("name"):
        problems.append("%s: %s without metadata.name" % (f, d.get("kind")))
report("required_fields", problems)


def find(kind):
    return [d for _, d in objs if isinstance(d, dict) and d.get("kind") == kind]


ds_list = find("DaemonSet")
ds = ds_list[0] if len(ds_list) == 1 else None
pod = ((ds or {}).get("spec", {}).get("template", {}).get("spec", {}))
containers = pod.get("containers", [])
ctr = containers[0] if len(containers) == 1 else {}

# --- image -----------------------------------------------------------------
problems = []
if ds is None:
    problems.append("expected exactly one DaemonSet, found %d" % len(ds_list))
if not image:
    problems.append("deploy/Dockerfile has no '# IMAGE: NAME' line")
else:
    if ctr.get("image") != image:
        problems.append("DaemonSet image %r, Dockerfile IMAGE %r" % (ctr.get("image"), image))
    if 'org.opencontainers.image.ref.name="%s"' % image not in dockerfile:
        problems.append("Dockerfile LABEL org.opencontainers.image.ref.name is not %s" % image)
# The runtime stage installs runtime libraries only, and ships both binaries.
stages = re.split(r"^FROM ", dockerfile, flags=re.M)
runtime = stages[-1] if len(stages) >= 3 else ""
if not runtime.startswith("debian:bookworm"):
    problems.append("the runtime stage is not FROM debian:bookworm*")
for lib in ("libbpf1", "libelf1", "libjansson4", "libyaml-0-2", "libnl-3-200",
            "libnl-route-3-200", "libmicrohttpd12", "libcurl4", "libprotobuf-c1"):
    if not re.search(r"\b%s\b" % re.escape(lib), runtime):
        problems.append("the runtime stage does not install %s" % lib)
if re.search(r"\S+-dev\b", runtime):
    problems.append("the runtime stage installs a -dev package")
for binary in ("build/ferryd", "build/ferryctl"):
    if binary not in runtime:
        problems.append("the runtime stage does not copy %s" % binary)
report("image_matches_dockerfile", problems)

# --- capabilities ------------------------------------------------------------
problems = []
sc = ctr.get("securityContext", {})
caps = sc.get("capabilities", {})
added = set(caps.get("add", []))
# docs/kubernetes.md: the table under "## Capabilities", one `CAP_X` per row.
sect = re.search(r"^## Capabilities\n(.*?)(?=^## |\Z)", docs, re.M | re.S)
documented = set(re.findall(r"^\| `CAP_(\w+)` \|", sect.group(1), re.M)) if sect else set()
if not sect:
    problems.append("docs/kubernetes.md has no '## Capabilities' section")
if added != documented:
    problems.append("DaemonSet adds %s, docs/kubernetes.md documents %s" %
                    (sorted(added), sorted(documented)))
if caps.get("drop") != ["ALL"]:
    problems.append("capabilities.drop must be [ALL], is %r" % caps.get("drop"))
if sc.get("privileged") is not False:
    problems.append("securityContext.privileged must be false")
if "SYS_ADMIN" in added:
    problems.append("SYS_ADMIN is not needed (CAP_BPF covers bpf(2) since 5.8)")
report("capabilities_match_docs", problems)

# --- bpffs -------------------------------------------------------------------
problems = []
vols = {v.get("name"): v for v in pod.get("volumes", [])}
mounts = [m for m in ctr.get("volumeMounts", []) if m.get("mountPath") == "/sys/fs/bpf"]
if not mounts:
    problems.append("no volumeMount at /sys/fs/bpf")
else:
    vol = vols.get(mounts[0].get("name"), {})
    hp = vol.get("hostPath", {})
    if hp.get("path") != "/sys/fs/bpf":
        problems.append("the /sys/fs/bpf mount is not hostPath /sys/fs/bpf")
    if hp.get("type") != "DirectoryOrCreate":
        problems.append("hostPath type %r, want DirectoryOrCreate" % hp.get("type"))
    # Bidirectional is refused by the API server for a non-privileged
    # container; pins reach the host through the bind mount anyway.
    if mounts[0].get("mountPropagation") != "HostToContainer":
        problems.append("mountPropagation %r, want HostToContainer" %
                        mounts[0].get("mountPropagation"))
if pod.get("hostNetwork") is not True:
    problems.append("hostNetwork must be true")
if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
    problems.append("dnsPolicy must be ClusterFirstWithHostNet with hostNetwork")
report("bpffs_mounted", problems)

# --- RBAC vs. the client ------------------------------------------------------
problems = []
used = {}  # (group, resource) -> verbs the client needs
for group, version, plural in re.findall(r'"/apis/([\w.]+)/(\w+)",\s*"(\w+)"', k8s_c):
    used[(group, plural)] = {"get", "list", "watch"}
# The core group ("/api/v1"): Services, for ferry.io/vip: service/NAME.
for version, plural in re.findall(r'"/api/(v1)",\s*"(\w+)"', k8s_c):
    used[("", plural)] = {"get", "list", "watch"}
if re.search(r'"%s/api/v1/namespaces/%s/events"', k8s_c):
    used[("", "events")] = {"create"}
seed_secret = re.search(r'#define FERRYD_HASH_SEED_SECRET_DEFAULT "([^"]+)"',
                        read(os.path.join("user", "ferryd_options.h"))).group(1)
# The hash seed Secret: get one by name, create it if missing (a namespaced Role).
if re.search(r'"%s/api/v1/namespaces/%s/secrets/%s"', k8s_c):
    used[("", "secrets")] = {"get", "create"}
if len(used) < 4:
    problems.append("found only %s in user/source/k8s_*; did the API paths move?" % sorted(used))
granted = {}
# The Role ferryd-canary is canary_cluster.c's, checked against that file below.
for role in find("ClusterRole") + [r for r in find("Role")
                                   if r.get("metadata", {}).get("name") != "ferryd-canary"]:
    for rule in role.get("rules", []):
        if role.get("kind") == "ClusterRole" and "secrets" in rule.get("resources", []):
            problems.append("a ClusterRole grants secrets: only ferry's namespace needs them (a Role)")
        # get on secrets only by name: every other Secret of the namespace stays unreadable.
        if "secrets" in rule.get("resources", []) and "get" in rule.get("verbs", []) and \
                rule.get("resourceNames") != [seed_secret]:
            problems.append("get on secrets must be limited by resourceNames to %s "
                            "(ferryd's --hash-seed-secret default), is %r" %
                            (seed_secret, rule.get("resourceNames")))
        if "secrets" in rule.get("resources", []) and set(rule.get("verbs", [])) & {"list", "watch"}:
            problems.append("list/watch on secrets would read every Secret of the namespace")
        for g in rule.get("apiGroups", []):
            for r in rule.get("resources", []):
                granted.setdefault((g, r), set()).update(rule.get("verbs", []))
for key, verbs in sorted(used.items()):
    missing = verbs - granted.get(key, set())
    if missing:
        problems.append("the client (user/source/k8s_*) uses %s/%s but RBAC lacks %s" % (key[0] or "core", key[1],
                                                                       sorted(missing)))
for key in sorted(set(granted) - set(used)):
    problems.append("RBAC grants %s/%s, which the client (user/source/k8s_*) never uses" % (key[0] or "core", key[1]))
for key, verbs in granted.items():
    if verbs & {"*", "delete", "deletecollection", "update"} or "*" in key[1]:
        problems.append("RBAC grants more than needed on %s/%s: %s" % (key[0] or "core", key[1],
                                                                       sorted(verbs)))
report("rbac_matches_client", problems)

# --- canary analysis over several nodes: the Role vs. canary_cluster.c ---------
problems = []
cc = read("user/canary/canary_cluster.c") + read("user/canary/canary_cluster.h")
need = {}  # (group, resource) -> verbs
if "/apis/coordination.k8s.io/v1/namespaces/%s/leases" in cc:
    need[("coordination.k8s.io", "leases")] = {"get", "create", "update"}
if "/api/v1/namespaces/%s/configmaps" in cc:
    need[("", "configmaps")] = {"get", "create", "update"}
if "/api/v1/namespaces/%s/pods?labelSelector" in cc:
    need[("", "pods")] = {"list"}
if len(need) != 3:
    problems.append("found only %s in user/canary/canary_cluster.c; did the paths move?" % sorted(need))
roles = [r for r in find("Role") if r.get("metadata", {}).get("name") == "ferryd-canary"]
got = {}
for role in roles:
    for rule in role.get("rules", []):
        for g in rule.get("apiGroups", []):
            for r in rule.get("resources", []):
                got.setdefault((g, r), set()).update(rule.get("verbs", []))
                names = rule.get("resourceNames")
                if names and names != ["ferry-canary"]:
                    problems.append("Role ferryd-canary names %s, not ferry-canary" % names)
if not roles:
    problems.append("no Role ferryd-canary in deploy/kubernetes")
for key, verbs in sorted(need.items()):
    if verbs - got.get(key, set()):
        problems.append("canary_cluster.c uses %s/%s but Role ferryd-canary lacks %s" %
                        (key[0] or "core", key[1], sorted(verbs - got.get(key, set()))))
for key in sorted(set(got) - set(need)):
    problems.append("Role ferryd-canary grants %s/%s, which canary_cluster.c never uses" %
                    (key[0] or "core", key[1]))
if not any(b.get("roleRef", {}).get("name") == "ferryd-canary" for b in find("RoleBinding")):
    problems.append("no RoleBinding for Role ferryd-canary")
report("canary_rbac_matches_cluster", problems)

# --- names and ports agree ----------------------------------------------------
problems = []
sas = find("ServiceAccount")
sa = sas[0] if len(sas) == 1 else {}
sa_name = (sa.get("metadata") or {}).get("name")
ns_names = {(n.get("metadata") or {}).get("name") for n in find("Namespace")}
if pod.get("serviceAccountName") != sa_name:
    problems.append("DaemonSet serviceAccountName %r, ServiceAccount %r" %
                    (pod.get("serviceAccountName"), sa_name))
for b in find("ClusterRoleBinding"):
    subj = b.get("subjects", [{}])[0]
    if subj.get("name") != sa_name or subj.get("namespace") != (sa.get("metadata") or {}).get(
            "namespace"):
        problems.append("ClusterRoleBinding subject %r is not the ServiceAccount" % subj)
    roles = {(r.get("metadata") or {}).get("name") for r in find("ClusterRole")}
    if b.get("roleRef", {}).get("name") not in roles:
        problems.append("ClusterRoleBinding refers to a missing ClusterRole")
for b in find("RoleBinding"):
    subj = b.get("subjects", [{}])[0]
    if subj.get("name") != sa_name or subj.get("namespace") != (sa.get("metadata") or {}).get(
            "namespace"):
        problems.append("RoleBinding subject %r is not the ServiceAccount" % subj)
    roles = {(r.get("metadata") or {}).get("name") for r in find("Role")}
    if b.get("roleRef", {}).get("kind") != "Role" or b.get("roleRef", {}).get("name") not in roles:
        problems.append("RoleBinding refers to a missing Role")
for f, d in objs:
    if not isinstance(d, dict) or d.get("kind") in ("Namespace", "ClusterRole",
                                                      "ClusterRoleBinding", "Kustomization"):
        continue
    if (d.get("metadata") or {}).get("namespace") not in ns_names:
        problems.append("%s: %s in namespace %r, not one of %s" %
                        (f, d.get("kind"), (d.get("metadata") or {}).get("namespace"),
                         sorted(ns_names)))
args = ctr.get("args", [])
if "--kubernetes" not in args:
    problems.append("DaemonSet args lack --kubernetes")
port = None
if "--metrics-addr" in args and args.index("--metrics-addr") + 1 < len(args):
    port = int(args[args.index("--metrics-addr") + 1].rsplit(":", 1)[1])
ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports", [])}
if port is None or ports.get("metrics") != port:
    problems.append("--metrics-addr port %r and the 'metrics' containerPort %r differ" %
                    (port, ports.get("metrics")))
# Liveness: the server runs; readiness: the first sync is done (user/telemetry/metrics_server.c serves both).
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    get = ctr.get(probe, {}).get("httpGet", {})
    if get.get("path") != path or get.get("port") not in ("metrics", port):
        problems.append("%s must GET %s on the metrics port" % (probe, path))
    if '"%s"' % path not in open(os.path.join(top, "user", "telemetry", "metrics_server.c")).read():
        problems.append("%s: ferryd's metrics server (user/telemetry/metrics_server.c) does not serve %s" %
                        (probe, path))
if ds and ds["spec"].get("updateStrategy", {}).get("rollingUpdate", {}).get(
        "maxUnavailable") != 1:
    problems.append("updateStrategy.rollingUpdate.maxUnavailable must be 1")
sel = (ds or {}).get("spec", {}).get("selector", {}).get("matchLabels", {})
for pm in find("PodMonitor"):
    if pm["spec"].get("selector", {}).get("matchLabels") != sel:
        problems.append("PodMonitor selector does not match the DaemonSet's pods")
    if [e.get("port") for e in pm["spec"].get("podMetricsEndpoints", [])] != ["metrics"]:
        problems.append("PodMonitor must scrape the 'metrics' port")
if not find("PodMonitor"):
    problems.append("no PodMonitor")
report("names_consistent", problems)

sys.exit(1 if failed else 0)
PYEOF
