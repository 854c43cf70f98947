#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# canary_cluster: canary analysis over two nodes (--kubernetes, the fake API
# server of tests/k8s_apiserver.py). ferryd "node-b" has no client traffic and
# starts first, so it takes the Lease ferry-canary and decides; ferryd
# "node-a" balances all the traffic (its own pins and metrics port in the same
# network namespace; node-b's interface is a veth pair of its own there). node-b can only judge by gathering node-a's windows from
# its /canary/window (found through the pods list); both apply the decisions
# published in the ConfigMap ferry-canary: the rollout walks from 10% to 50%
# on both, and the two kernels hold the same canary weight. When node-b stops,
# node-a keeps the last published weight, then takes the Lease over.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/canary.sh
. "$(dirname "$0")/../lib/canary.sh"
# shellcheck source=SCRIPTDIR/../lib/k8s.sh
. "$(dirname "$0")/../lib/k8s.sh"
fe_init canary_cluster ccl
fe_require_root
fe_require_ferryd
command -v openssl >/dev/null || fe_skip "openssl not installed (make deps)"
FE_CANARY_DEP=models/iris
vip=$FE_CANARY_VIP
token=fe-ccl-token
pin_b="$FE_PIN-b"
metrics_b=127.0.0.1:9465
# node-b's pins and its files in /run/ferry: removed now (a run killed with -9
# may have left them) and on every exit, before fe_cleanup.
forget_b() {
	[ -d "$pin_b" ] && [ -e "/run/netns/$FE_NODE" ] &&
		nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "$pin_b" \
			reset --yes >/dev/null 2>&1
	rm -rf "$pin_b"
	fe_status_files_rm "$pin_b"
}
cleanup_b() {
	local rc=$?
	# node-b's ferryd first: it would write its files again.
	[ -n "${pid_b:-}" ] && kill -TERM "$pid_b" 2>/dev/null && wait "$pid_b" 2>/dev/null
	forget_b
	(exit "$rc")
	fe_cleanup
}
trap cleanup_b EXIT
fe_canary_forget
forget_b
fe_canary_backends --delay-ms 10
# node-b's interface: a veth pair inside the node that never sees a client.
ip -n "$FE_NODE" link add "fe$FE_TAG-d" type veth peer name "fe$FE_TAG-e" &&
	ip -n "$FE_NODE" link set "fe$FE_TAG-d" up && ip -n "$FE_NODE" link set "fe$FE_TAG-e" up ||
	fe_fail "node-b's interface"

fe_k8s_py - "$vip" "$(fe_backend_ip 1)" "$(fe_backend_ip 2)" "$(fe_backend_ip 3)" \
	>"$FE_RUN/scenario.json" <<'PY'
import json, sys
from k8s_objects import GRAPH as graph, endpoint_slice as sl
vip, b1, b2, b3 = sys.argv[1:]
ann = {"ferry.io/vip": vip, "ferry.io/canary": "auto",
       "ferry.io/canary-steps": "10,25,50,100", "ferry.io/canary-interval": "3s",
       "ferry.io/canary-min-requests": "30", "ferry.io/canary-min-effect": "1.3"}
sdep = {"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment",
        "metadata": {"name": "iris", "namespace": "models", "uid": "uid-iris",
                     "annotations": ann},
        "spec": {"predictors": [{"name": "main", "traffic": 90, "graph": graph},
                                {"name": "canary", "traffic": 10, "graph": graph}]}}
def pod(name, port):
    return {"metadata": {"name": name, "namespace": "ferry-system",
                         "labels": {"app.kubernetes.io/name": "ferryd"}},
            "spec": {"containers": [{"name": "ferryd",
                                     "ports": [{"name": "metrics", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1"}}
print(json.dumps({"objects": {
    "seldondeployments": [sdep],
    "endpointslices": [sl("iris-main-x", "iris-main", [b1, b2]),
                       sl("iris-canary-x", "iris-canary", [b3])],
    "services": [],
    "pods": [pod("node-a", 9464), pod("node-b", 9465)]}}))
PY
fe_k8s_start "$token" "$FE_RUN/scenario.json"

fe_k8s_ferryd "$FE_RUN/ferryd-b.log" POD_NAME=node-b NODE_NAME=node-b POD_NAMESPACE=ferry-system -- \
	--iface "fe$FE_TAG-d" --pin-path "$pin_b" --metrics-addr "$metrics_b"
pid_b=$FE_LAST_PID
leads() { grep -q "($1) now makes the decisions" "$2"; }
fe_wait 20 leads node-b "$FE_RUN/ferryd-b.log" || fe_fail "node-b did not take the Lease"
# shellcheck disable=SC2046
fe_k8s_ferryd "$FE_RUN/ferryd.log" POD_NAME=node-a NODE_NAME=node-a POD_NAMESPACE=ferry-system -- \
	--iface "$FE_IF_NODE_CLIENT" $(fe_reply_iface_args) --pin-path "$FE_PIN" \
	--metrics-addr "$FE_METRICS"
FERRYD_PID=$FE_LAST_PID
fe_wait 20 fe_ferryd_serving || fe_fail "node-a does not serve /metrics within 20 s"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer through node-a"

weight_of() { fe_canary_kernel_weight "$1"; } # PIN: the canary weight in that node's kernel
# Both kernels hold the same canary weight, step 3 (50%) or later: the rollout can
# move on within a window, so "exactly 50%" may be missed between two reads.
same_weight() {
	local a b
	a=$(weight_of "$FE_PIN") && b=$(weight_of "$pin_b") && [ "$a" = "$b" ] &&
		{ [ "$a" = 50.0 ] || [ "$a" = 100.0 ]; }
}
fe_canary_load
load=$FE_LAST_PID
if ! fe_wait 40 same_weight; then
	fe_canary_show
	fe_fail "the two nodes do not both hold the canary at 50% or more (node-a $(weight_of "$FE_PIN"), node-b $(weight_of "$pin_b"))"
fi
grep -q "progressing step 2/4 -> progressing step 3/4.*pass (ok): requests [1-9]" "$FE_RUN/ferryd-b.log" ||
	fe_fail "node-b (no traffic of its own) did not decide from node-a's counts"
grep -q "the deciding node's published decision" "$FE_RUN/ferryd.log" ||
	fe_fail "node-a did not apply the published decision"
fe_canary_show
# The deciding node's transitions are Events on the SeldonDeployment.
fe_k8s_control >"$FE_RUN/control.json" || fe_fail "API server state"
steps=$(fe_json "$FE_RUN/control.json" "len([e for e in d['events'] if e['reason'] == 'CanaryStep' and e['involvedObject']['kind'] == 'SeldonDeployment' and e['involvedObject']['name'] == 'iris' and e['source']['host'] == 'node-b'])")
[ "$steps" -ge 2 ] || fe_fail "$steps CanaryStep Events from node-b on SeldonDeployment iris, want >= 2"
others=$(fe_json "$FE_RUN/control.json" "len([e for e in d['events'] if e['reason'].startswith('Canary') and e['source']['host'] != 'node-b'])")
[ "$others" -eq 0 ] || fe_fail "$others canary Events from a node that does not decide"

# Losing the leader: node-a keeps the last published weight, then takes over.
kill -TERM "$pid_b"
wait "$pid_b" 2>/dev/null
w=$(weight_of "$FE_PIN")
fe_loadgen_stop "$load"
[ "$w" = 50.0 ] || [ "$w" = 100.0 ] || fe_fail "node-a holds $w% after node-b stopped"
fe_wait 20 leads node-a "$FE_RUN/ferryd.log" || fe_fail "node-a did not take the Lease over"
nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "$pin_b" reset --yes \
	>/dev/null 2>&1
fe_pass "node-b decided from node-a's windows; both kernels at the same step (>= 50%); node-a kept $w% and took the Lease over"
