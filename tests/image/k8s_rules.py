#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""The API server's pod validation rules that ferry's DaemonSet can break.

No API server runs on the test machine, so the rules that matter for
deploy/kubernetes/daemonset.yaml are written down here, with the message the
API server (or, for capability names, the container runtime) gives:

- mountPropagation is None, HostToContainer or Bidirectional, and
  Bidirectional only for a privileged container ("Bidirectional mount
  propagation is available only to privileged containers");
- allowPrivilegeEscalation: false cannot go with privileged: true, nor with
  an added SYS_ADMIN;
- capability names are Linux capability names without the CAP_ prefix (the
  runtime prefixes them: "CAP_BPF" becomes CAP_CAP_BPF, "unknown capability");
- a hostPath has an absolute path without "..", and one of the known types;
- every volumeMount names a declared volume, mount paths are unique, and a
  volume has exactly one source;
- a readOnlyRootFilesystem container writes only to declared volumes (checked
  in the image test, at run time).

Usage: k8s_rules.py DAEMONSET.yaml   prints one problem per line, exit 1 if any
       k8s_rules.py --self-test      each rule rejects a pod that breaks it
"""
import copy
import sys

import yaml

# include/uapi/linux/capability.h, without CAP_
LINUX_CAPS = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}
PROPAGATIONS = {"None", "HostToContainer", "Bidirectional"}
HOSTPATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice"}
VOLUME_SOURCES = {"hostPath", "emptyDir", "configMap", "secret", "projected",
                  "persistentVolumeClaim", "downwardAPI", "csi", "ephemeral"}


def pod_problems(pod):
    out = []
    vols = {}
    for v in pod.get("volumes", []) or []:
        name = v.get("name")
        if name in vols:
            out.append("volumes: duplicate name %r" % name)
        vols[name] = v
        sources = [k for k in v if k in VOLUME_SOURCES]
        if len(sources) != 1:
            out.append("volume %r: exactly one source expected, found %s" % (name, sources))
        hp = v.get("hostPath")
        if hp is not None:
            path = hp.get("path", "")
            if not path.startswith("/") or ".." in path.split("/"):
                out.append("volume %r: hostPath.path %r must be absolute, without '..'" %
                           (name, path))
            if hp.get("type", "") not in HOSTPATH_TYPES:
                out.append("volume %r: hostPath.type %r: supported values: %s" %
                           (name, hp.get("type"), sorted(HOSTPATH_TYPES)))
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        cn = c.get("name")
        sc = c.get("securityContext") or {}
        privileged = sc.get("privileged") is True
        caps = sc.get("capabilities") or {}
        for kind in ("add", "drop"):
            for cap in caps.get(kind) or []:
                if cap == "ALL" and kind == "drop":
                    continue
                if cap not in LINUX_CAPS:
                    hint = " (no CAP_ prefix in Kubernetes)" if cap.startswith("CAP_") else ""
                    out.append("container %r: capabilities.%s: unknown capability %r%s" %
                               (cn, kind, cap, hint))
        if sc.get("allowPrivilegeEscalation") is False:
            if privileged:
                out.append("container %r: cannot set allowPrivilegeEscalation to false and "
                           "privileged to true" % cn)
            if "SYS_ADMIN" in (caps.get("add") or []):
                out.append("container %r: cannot set allowPrivilegeEscalation to false and "
                           "capabilities.Add CAP_SYS_ADMIN" % cn)
        paths = set()
        for m in c.get("volumeMounts") or []:
            mp = m.get("mountPath")
            if m.get("name") not in vols:
                out.append("container %r: volumeMount %r: not found among the volumes" %
                           (cn, m.get("name")))
            if mp in paths:
                out.append("container %r: mountPath %r: must be unique" % (cn, mp))
            paths.add(mp)
            prop = m.get("mountPropagation")
            if prop is None:
                continue
            if prop not in PROPAGATIONS:
                out.append("container %r: mountPropagation %r: supported values: %s" %
                           (cn, prop, sorted(PROPAGATIONS)))
            elif prop == "Bidirectional" and not privileged:
                out.append("container %r: volumeMount %r: Bidirectional mount propagation "
                           "is available only to privileged containers" % (cn, m.get("name")))
    return out


def daemonset_pods(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    return [d["spec"]["template"]["spec"] for d in docs if d.get("kind") == "DaemonSet"]


def self_test():
    """Each rule, broken on purpose in a copy of a valid pod, must be caught."""
    good = {
        "volumes": [{"name": "bpffs", "hostPath": {"path": "/sys/fs/bpf",
                                                   "type": "DirectoryOrCreate"}},
                    {"name": "run", "emptyDir": {}}],
        "containers": [{
            "name": "c",
            "securityContext": {"privileged": False, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"], "add": ["BPF", "NET_ADMIN"]}},
            "volumeMounts": [{"name": "bpffs", "mountPath": "/sys/fs/bpf",
                              "mountPropagation": "HostToContainer"},
                             {"name": "run", "mountPath": "/run/ferry"}],
        }],
    }
    failures = []
    if pod_problems(good):
        failures.append("a valid pod is rejected: %s" % pod_problems(good))

    def bad(what, edit, expect):
        pod = copy.deepcopy(good)
        edit(pod)
        got = pod_problems(pod)
        if not any(expect in p for p in got):
            failures.append("%s: not caught (got %s)" % (what, got))

    c = lambda p: p["containers"][0]  # noqa: E731
    bad("Bidirectional without privileged",
        lambda p: c(p)["volumeMounts"][0].update(mountPropagation="Bidirectional"),
        "only to privileged")
    bad("unknown propagation", lambda p: c(p)["volumeMounts"][0].update(mountPropagation="Shared"),
        "supported values")
    bad("CAP_ prefix", lambda p: c(p)["securityContext"]["capabilities"]["add"].append("CAP_BPF"),
        "unknown capability 'CAP_BPF'")
    bad("privileged with no escalation",
        lambda p: c(p)["securityContext"].update(privileged=True), "privileged to true")
    bad("SYS_ADMIN with no escalation",
        lambda p: c(p)["securityContext"]["capabilities"]["add"].append("SYS_ADMIN"), "SYS_ADMIN")
    bad("hostPath type", lambda p: p["volumes"][0]["hostPath"].update(type="Dir"), "hostPath.type")
    bad("relative hostPath", lambda p: p["volumes"][0]["hostPath"].update(path="sys/fs/bpf"),
        "absolute")
    bad("undeclared volume", lambda p: c(p)["volumeMounts"][1].update(name="state"), "not found")
    bad("duplicate mountPath", lambda p: c(p)["volumeMounts"][1].update(mountPath="/sys/fs/bpf"),
        "unique")
    bad("two sources", lambda p: p["volumes"][1].update(hostPath={"path": "/x"}), "one source")
    # Bidirectional is fine for a privileged container (one that may escalate).
    pod = copy.deepcopy(good)
    c(pod)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)
    c(pod)["volumeMounts"][0]["mountPropagation"] = "Bidirectional"
    if pod_problems(pod):
        failures.append("privileged + Bidirectional rejected: %s" % pod_problems(pod))
    return failures


def main():
    if sys.argv[1:] == ["--self-test"]:
        problems = self_test()
    else:
        pods = daemonset_pods(sys.argv[1])
        problems = [] if pods else ["%s: no DaemonSet" % sys.argv[1]]
        for pod in pods:
            problems += pod_problems(pod)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
