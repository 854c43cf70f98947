#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# service_vip: `ferry.io/vip: service/iris` takes the VIP from a Service
# manifest (kind: Service, a ClusterIP and a port `http: 8000`) instead of an
# address written by hand. 80/20 over 1,500 new connections to the ClusterIP
# lands within 3 standard deviations; `ferryctl services` names the Service.
# Then the Service's port becomes 8080: within a second connections to the
# new port are balanced (the port named http still maps to the predictors'
# http port, 9000), and the old port is no longer answered by ferry.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init service_vip svcvip
fe_require_root
fe_require_ferryd
[ "$FE_LB" = ferry ] || fe_skip "Services are read by ferryd only (FE_LB=$FE_LB has no stand-in)"

cip=198.18.100.40 # the Service's ClusterIP
m="$(fe_backend_ip 1),$(fe_backend_ip 2)"
c="$(fe_backend_ip 3)"

service() { # PORT: writes the Service manifest (atomically, like kubectl apply's file)
	cat >"$FE_CONF/.iris-svc.tmp" <<YAML
apiVersion: v1
kind: Service
metadata:
  name: iris
  namespace: default
  labels:
    service.kubernetes.io/service-proxy-name: ferry
spec:
  type: ClusterIP
  clusterIP: $cip
  clusterIPs: [$cip]
  ipFamilies: [IPv4]
  selector:
    seldon-deployment-id: iris
  ports:
  - name: http
    port: $1
    protocol: TCP
    targetPort: 9000
YAML
	mv "$FE_CONF/.iris-svc.tmp" "$FE_CONF/iris-svc.yaml"
}

fe_std_backends
fe_manifest iris service/iris "main:80:$m" "canary:20:$c"
service 8000
fe_ferryd_start
fe_wait 10 fe_vip_ok "$cip:8000" || fe_fail "ClusterIP $cip:8000 does not answer within 10 s"

out="$FE_RUN/split.json"
fe_loadgen --target "$cip:8000" --close --connections 1500 --concurrency 32 --timeout 3 >"$out" ||
	fe_fail "load client failed"
fe_log "$(fe_json "$out" '{k: d[k] for k in ("requests", "errors", "backends", "duration_s")}')"
[ "$(fe_json "$out" 'd["error_total"]')" -eq 0 ] || fe_fail "failed requests: $(fe_json "$out" 'd["errors"]')"
[ "$(fe_json "$out" 'd["ok"]')" -eq 1500 ] || fe_fail "not every connection answered"
share=$(fe_share_check "$out" canary 0.2) || fe_fail "80/20 to the ClusterIP: $share"
fe_log "80/20: $share"

ctl() { nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "$FE_PIN" "$@"; }
ctl -j services >"$FE_RUN/services.json" || fe_fail "ferryctl -j services failed"
[ "$(fe_json "$FE_RUN/services.json" \
	"[(s['vip'], s['deployment'], s['service']) for s in d] == [('$cip:8000', 'default/iris', 'default/iris')]")" = True ] ||
	fe_fail "ferryctl -j services: $(cat "$FE_RUN/services.json")"
ctl services >"$FE_RUN/services.txt" || fe_fail "ferryctl services failed"
grep -Eq "^$cip:8000 +default/iris +service=default/iris " "$FE_RUN/services.txt" ||
	fe_fail "ferryctl services does not name the Service: $(head -1 "$FE_RUN/services.txt")"

# The Service's port changes: 8000 -> 8080.
service 8080
new_port_ok() { fe_vip_ok "$cip:8080"; }
fe_wait 1 new_port_ok || fe_fail "the Service's new port $cip:8080 is not answered within 1 s"
fe_burst "$cip:8080" 300 "$FE_RUN/p8080.json"
[ "$(fe_json "$FE_RUN/p8080.json" 'd["error_total"] == 0 and set(d["predictors"]) == {"main", "canary"}')" = True ] ||
	fe_fail "port 8080 not balanced: $(fe_json "$FE_RUN/p8080.json" '[d["predictors"], d["errors"]]')"
fe_vip_ok "$cip:8000" && fe_fail "the old port $cip:8000 is still answered after the Service moved to 8080"
ctl -j services >"$FE_RUN/services2.json" || fe_fail "ferryctl -j services failed"
[ "$(fe_json "$FE_RUN/services2.json" "[s['vip'] for s in d] == ['$cip:8080']")" = True ] ||
	fe_fail "VIPs after the port change: $(fe_json "$FE_RUN/services2.json" '[s["vip"] for s in d]')"
fe_pass "$share to the ClusterIP over 1500 connections; port 8000 -> 8080 followed within 1 s, old port unanswered"
