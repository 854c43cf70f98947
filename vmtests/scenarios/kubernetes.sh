#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# kubernetes: ferryd --kubernetes end to end. The fake API server of
# tests/k8s_apiserver.py (HTTPS, a CA and token made here) serves a
# SeldonDeployment and its EndpointSlices; ferryd lists and watches them and
# forwards real TCP through the VIP. Then, through the watch: a weight change
# moves new connections within a second, a rejected object leaves the good
# version serving and becomes a Warning Event, and a DELETED deployment stops
# being balanced. Services (list/watch of /api/v1/services): a deployment
# naming `service/irissvc` before the Service exists gets an Event, its
# ClusterIP is balanced once the Service is ADDED (and ferryd warns that it
# lacks the service-proxy-name label), and a DELETED Service removes the VIP.
# The cluster hash seed: the first ferryd creates the Secret
# ferry-system/ferry-hash-seed with a random seed; a second ferryd (another
# node: its own pin root) reads it and ends with the same seed in its pins.
# Protocol-level: no real cluster (docs/kubernetes.md).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/k8s.sh
. "$(dirname "$0")/../lib/k8s.sh"
fe_init kubernetes k8s
fe_require_root
fe_require_ferryd
command -v openssl >/dev/null || fe_skip "openssl not installed (make deps)"
command -v bpftool >/dev/null || fe_fail "needs bpftool (make deps)"
fe_second_pin
PIN2=$FE_PIN2 # the second node's pins

vip=198.18.100.30:8000
token=fe-k8s-token
fe_std_backends

# The objects as the API server returns them (JSON), built from the same
# specs the other scenarios write as YAML.
objects() { # MAIN_WEIGHT CANARY_WEIGHT: a JSON scenario on stdout
	fe_k8s_py - "$1" "$2" "$vip" "$(fe_backend_ip 1)" "$(fe_backend_ip 2)" "$(fe_backend_ip 3)" <<'EOF'
import json, sys
from k8s_objects import GRAPH, endpoint_slice as sl
wm, wc, vip, b1, b2, b3 = sys.argv[1:]
def sdep(name, traffic):
    return {"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment",
            "metadata": {"name": name, "namespace": "models", "uid": "uid-" + name,
                         "annotations": {"ferry.io/vip": vip}},
            "spec": {"predictors": [
                {"name": "main", "traffic": traffic[0], "graph": GRAPH},
                {"name": "canary", "traffic": traffic[1], "graph": GRAPH}]}}
# A second deployment over the same pods (seldon.io/svc-name), its VIP from a Service.
svcdep = sdep("irissvc", (50, 50))
svcdep["metadata"]["annotations"]["ferry.io/vip"] = "service/irissvc"
for p in svcdep["spec"]["predictors"]:
    p["annotations"] = {"seldon.io/svc-name": "iris-" + p["name"]}
service = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "irissvc", "namespace": "models", "uid": "uid-svc"},
           "spec": {"type": "ClusterIP", "clusterIP": "198.18.100.31",
                    "clusterIPs": ["198.18.100.31"],
                    "ports": [{"name": "http", "port": 8000, "protocol": "TCP",
                               "targetPort": 9000}]}}
print(json.dumps({"sdep": sdep("iris", (int(wm), int(wc))), "svcdep": svcdep, "service": service,
                  "slices": [sl("iris-main-x", "iris-main", [b1, b2]),
                             sl("iris-canary-x", "iris-canary", [b3])]}))
EOF
}
objects 50 50 >"$FE_RUN/objs.json" || fe_fail "objects"
"$FE_PY" -c '
import json, sys
o = json.load(open(sys.argv[1]))
json.dump({"objects": {"seldondeployments": [o["sdep"], o["svcdep"]], "endpointslices": o["slices"],
                       "services": []}}, sys.stdout)
' "$FE_RUN/objs.json" >"$FE_RUN/scenario.json"

fe_k8s_start "$token" "$FE_RUN/scenario.json"

control() { # JSON ops: runs them on the server
	fe_k8s_control -H 'Content-Type: application/json' -d "$1"
}

# shellcheck disable=SC2046
fe_k8s_ferryd "$FE_RUN/ferryd.log" -- --iface "$FE_IF_NODE_CLIENT" $(fe_reply_iface_args) \
	--pin-path "$FE_PIN" --metrics-addr "$FE_METRICS"
FERRYD_PID=$FE_LAST_PID
fe_wait 20 fe_ferryd_serving || fe_fail "ferryd does not serve /metrics within 20 s"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip from the API server does not answer within 10 s"
# The maps are written before ferryd marks the sync complete: the VIP can
# answer a moment before /readyz does (seen under TSan's slowdown).
readyz_ok() { fe_ns "$FE_NODE" curl -sf --max-time 2 "http://$FE_METRICS/readyz" >/dev/null; }
fe_wait 5 readyz_ok || fe_fail "/readyz is not 200 within 5 s of the API's first list being applied"
fe_burst "$vip" 400 "$FE_RUN/5050.json"

# The hash seed: ferryd found no Secret and created one; a second node's
# ferryd reads it, so both hash with the same seed.
seed_of() { # PIN: ferry_config.hash_seed
	bpftool -j map dump pinned "$1/ferry_config" |
		"$FE_PY" -c 'import json, sys; e = json.load(sys.stdin)[0]; print(e.get("formatted", e)["value"]["hash_seed"])'
}
state() { # the server's state into $FE_RUN/state.json
	fe_k8s_control >"$FE_RUN/state.json"
}
state || fe_fail "control: state"
[ "$(fe_json "$FE_RUN/state.json" 'bool(d["secrets"].get("ferry-system/ferry-hash-seed", {}).get("data", {}).get("seed"))')" = True ] ||
	fe_fail "ferryd did not create the Secret ferry-system/ferry-hash-seed with a key 'seed': $(fe_json "$FE_RUN/state.json" 'd["secrets"]')"
grep -q "hash seed: the cluster's, from Secret ferry-system/ferry-hash-seed key seed (created by this node" "$FE_RUN/ferryd.log" ||
	fe_fail "ferryd does not log that it created the seed Secret: $(grep 'hash seed' "$FE_RUN/ferryd.log")"
fe_k8s_ferryd "$FE_RUN/ferryd2.log" -- --pod-iface 'fenone*' --pin-path "$PIN2"
ferryd2=$FE_LAST_PID
seeded2() { grep -q "hash seed: the cluster's" "$FE_RUN/ferryd2.log"; }
fe_wait 20 seeded2 || fe_fail "the second ferryd did not take the cluster's seed: $(tail -n 3 "$FE_RUN/ferryd2.log")"
seed1=$(seed_of "$FE_PIN")
seed2=$(seed_of "$PIN2")
[ -n "$seed1" ] && [ "$seed1" = "$seed2" ] || fe_fail "two ferryd, two seeds: $seed1 and $seed2"
grep -q "created by this node" "$FE_RUN/ferryd2.log" && fe_fail "the second ferryd created the Secret again"
state || fe_fail "control: state"
[ "$(fe_json "$FE_RUN/state.json" 'sum(1 for r in d["requests"] if r.get("resource") == "secrets" and r["method"] == "POST")')" -eq 1 ] ||
	fe_fail "Secret creates: $(fe_json "$FE_RUN/state.json" '[r for r in d["requests"] if r.get("resource") == "secrets"]')"
kill -TERM "$ferryd2"
wait "$ferryd2" 2>/dev/null
fe_log "both ferryd hash with the Secret's seed ($seed1)"
[ "$(fe_json "$FE_RUN/5050.json" 'd["error_total"] == 0 and len(d["predictors"]) == 2')" = True ] ||
	fe_fail "50/50 from the API: $(fe_json "$FE_RUN/5050.json" '[d["predictors"], d["errors"]]')"

# Services: irissvc names a Service that does not exist yet: an Event says so.
svc_vip=198.18.100.31:8000
waiting_event() {
	state && [ "$(fe_json "$FE_RUN/state.json" \
		'any(e["involvedObject"]["name"] == "irissvc" and "does not exist" in e["message"] for e in d["events"])')" = True ]
}
fe_wait 5 waiting_event || fe_fail "no Event for a deployment whose Service does not exist yet"
fe_vip_ok "$svc_vip" && fe_fail "$svc_vip answers before its Service exists"
grep -q "list.*services\|listed [0-9]* services" "$FE_RUN/ferryd.log" ||
	fe_fail "ferryd did not list services: $(grep kubernetes "$FE_RUN/ferryd.log" | tail -3)"
# ADDED through the watch: balanced.
control "{\"ops\": [{\"op\": \"put\", \"resource\": \"services\", \"object\": $(fe_json "$FE_RUN/objs.json" 'd["service"]')}]}" >/dev/null ||
	fe_fail "control: put Service"
svc_ok() { fe_vip_ok "$svc_vip"; }
fe_wait 2 svc_ok || fe_fail "the Service's ClusterIP $svc_vip is not balanced within 2 s of the Service's ADDED event"
fe_burst "$svc_vip" 200 "$FE_RUN/svc.json"
[ "$(fe_json "$FE_RUN/svc.json" 'd["error_total"] == 0 and set(d["predictors"]) == {"main", "canary"}')" = True ] ||
	fe_fail "Service VIP split: $(fe_json "$FE_RUN/svc.json" '[d["predictors"], d["errors"]]')"
grep -q "Service models/irissvc: no label service.kubernetes.io/service-proxy-name" "$FE_RUN/ferryd.log" ||
	fe_fail "ferryd does not warn that the Service lacks the service-proxy-name label"
# DELETED through the watch: the VIP goes, the other deployment stays.
control '{"ops": [{"op": "delete", "resource": "services", "namespace": "models", "name": "irissvc"}]}' >/dev/null ||
	fe_fail "control: delete Service"
svc_gone() { ! fe_vip_ok "$svc_vip"; }
fe_wait 5 svc_gone || fe_fail "$svc_vip still answers after its Service was deleted"
fe_vip_ok "$vip" || fe_fail "$vip stopped answering when another deployment's Service was deleted"

# A weight change arrives as a MODIFIED event.
objects 0 100 >"$FE_RUN/objs2.json"
control "{\"ops\": [{\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": $(fe_json "$FE_RUN/objs2.json" 'd["sdep"]')}]}" >/dev/null ||
	fe_fail "control: put 0/100"
all_canary() {
	fe_burst "$vip" 100 "$FE_RUN/canary.json"
	[ "$(fe_json "$FE_RUN/canary.json" 'd["error_total"] == 0 and set(d["predictors"]) == {"canary"}')" = True ]
}
fe_wait 2 all_canary || fe_fail "0/100 through the watch not followed: $(fe_json "$FE_RUN/canary.json" 'd["predictors"]')"

# A rejected version: the last good one keeps serving, and an Event says why.
bad=$(fe_json "$FE_RUN/objs2.json" 'dict(d["sdep"], spec={"predictors": [dict(p, traffic=60) for p in d["sdep"]["spec"]["predictors"]]})')
control "{\"ops\": [{\"op\": \"put\", \"resource\": \"seldondeployments\", \"object\": $bad}]}" >/dev/null ||
	fe_fail "control: put bad"
event_posted() {
	control '{"ops": []}' >/dev/null
	state && [ "$(fe_json "$FE_RUN/state.json" \
		'any(e["involvedObject"]["name"] == "iris" and e["reason"] == "FerryInvalidManifest" for e in d["events"])')" = True ]
}
fe_wait 5 event_posted || fe_fail "no Warning Event for the rejected SeldonDeployment"
[ "$(fe_json "$FE_RUN/state.json" 'any(e["involvedObject"]["name"] == "iris" and "traffic" in e["message"] for e in d["events"])')" = True ] || fe_fail "the Event does not name the field: $(cat "$FE_RUN/state.json")"
all_canary || fe_fail "the rejected version changed the split: $(fe_json "$FE_RUN/canary.json" 'd["predictors"]')"

# DELETED: the VIP is not balanced any more.
control '{"ops": [{"op": "delete", "resource": "seldondeployments", "namespace": "models", "name": "iris"}]}' >/dev/null ||
	fe_fail "control: delete"
vip_gone() { ! fe_vip_ok "$vip"; }
fe_wait 5 vip_gone || fe_fail "the VIP still answers after its SeldonDeployment was deleted"
fe_pass "listed and watched: 50/50 split, Service waited for (Event), balanced when ADDED and removed when DELETED, 0/100 followed, bad version kept out with an Event, delete removed the VIP, one hash seed Secret shared by two ferryd"
