#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# reply_auto: ferryd started without --reply-iface finds the interfaces its
# backends are routed through (netlink route look-ups) and puts the reply
# program there; a backend that appears later, behind an interface that did
# not exist when ferryd started, is served too (ferryd follows the change).
# A reply that is not translated never reaches the client's socket (it comes
# from the backend's address), so every answered request proves the reply path.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init reply_auto ra
fe_require_root
fe_require_ferryd
vip=198.18.100.10:8000
fe_std_backends
fe_manifest iris "$vip" "main:50:$(fe_backend_ip 1),$(fe_backend_ip 2)" "canary:50:$(fe_backend_ip 3)"

# fe_ferryd_start names every backend interface; this scenario must not.
nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryd" --config-dir "$FE_CONF" \
	--iface "$FE_IF_NODE_CLIENT" --pin-path "$FE_PIN" --metrics-addr "$FE_METRICS" \
	>>"$FE_RUN/ferryd.log" 2>&1 &
FERRYD_PID=$!
FE_PIDS+=($!)
fe_wait 20 fe_ferryd_serving || fe_fail "ferryd does not serve /metrics within 20 s"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer: replies not translated?"
n=$(grep -c "reply program attached (TC ingress): backends are routed there" "$FE_RUN/ferryd.log")
[ "$n" -eq 3 ] || fe_fail "reply program on $n interfaces, want the 3 backend-facing ones"

fe_burst "$vip" 600 "$FE_RUN/burst.json"
[ "$(fe_json "$FE_RUN/burst.json" 'd["error_total"]')" -eq 0 ] ||
	fe_fail "failed requests: $(fe_json "$FE_RUN/burst.json" 'd["errors"]')"
[ "$(fe_json "$FE_RUN/burst.json" 'len(d["backends"])')" -eq 3 ] ||
	fe_fail "not every backend answered: $(fe_json "$FE_RUN/burst.json" 'd["backends"]')"

# A fourth backend behind a new interface, after ferryd started.
ns=$(fe_backend_ns 4)
ip netns add "$ns" || fe_fail "ip netns add $ns"
ip -n "$ns" link set lo up
ip -n "$FE_NODE" link add "$(fe_node_if 4)" type veth peer name "$(fe_backend_if 4)" netns "$ns" ||
	fe_fail "veth backend 4"
FE_NBACKENDS=4
ip -n "$FE_NODE" addr add 198.18.14.1/24 dev "$(fe_node_if 4)"
ip -n "$FE_NODE" link set "$(fe_node_if 4)" up
ip -n "$ns" addr add "$(fe_backend_ip 4)/24" dev "$(fe_backend_if 4)"
ip -n "$ns" link set "$(fe_backend_if 4)" up
ip -n "$ns" route add default via 198.18.14.1
fe_server 4 canary-1 canary
fe_servers_wait || fe_fail "backend 4 did not start"
fe_manifest iris "$vip" "main:50:$(fe_backend_ip 1),$(fe_backend_ip 2)" \
	"canary:50:$(fe_backend_ip 3),$(fe_backend_ip 4)"

got4() {
	fe_burst "$vip" 200 "$FE_RUN/burst4.json"
	[ "$(fe_json "$FE_RUN/burst4.json" 'd["error_total"] == 0 and d["backends"].get("canary-1", 0) > 0')" = True ]
}
fe_wait 10 got4 || fe_fail "the new backend behind $(fe_node_if 4) is not served: $(fe_json "$FE_RUN/burst4.json" '[d["backends"], d["errors"]]')"
grep -q "$(fe_node_if 4): reply program attached" "$FE_RUN/ferryd.log" ||
	fe_fail "no reply program on $(fe_node_if 4)"
fe_pass "reply program found on 3 interfaces by route, then on a 4th that appeared later; 0 failed"
