#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# XDP or TC for ferry's forward program on a veth: packet rate through one
# node namespace with ferryd attached each way (--attach xdp, --attach tc,
# and the default auto), same frames, same sink. For docs/performance.md
# ("XDP or TC on a veth"); not part of make bench.
#
#   client fq-c ==veth== fq-n0 [node: ferryd] fq-n1 ==veth== fq-b1 backend
#
# Frames: bench/pps_gen (live XDP frames redirected out of fq-c, 4,096 UDP
# flows to the VIP). Sink: pps_gen's counting XDP program on fq-b1 (so the
# node's fq-n1 reports ndo-xmit and ferryd makes it a tx port by itself).
# In TC mode fq-n0 has GRO on, so its NAPI takes the generator's frames and
# builds skbs; in XDP mode ferry's program takes them. Everything is pinned
# to one CPU (--cpu), so cpu_seconds covers generator, node and sink.
#
# Pod mode, the same wiring read as pods (ferryd --pod-iface 'fq-n*'): the
# policy-safe default (rewrite, the stack routes) against
# --pod-fast-path=peer (bpf_redirect_peer into the backend pod). Their
# sink is an iptables raw-table DROP rule in the backend pod counting what
# arrives (a redirect_peer skb enters the pod after its veth's XDP); the
# generator's own counter sits on fq-c, where nothing arrives.
# Usage (root, under the shared lock): tools/veth_hook_pps.sh [RUNS [all|gateway|pod]]
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILD:-$top/build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
runs=${1:-5}
what=${2:-all}
pin=/sys/fs/bpf/ferry-fq
work=$(mktemp -d /tmp/fq.XXXXXX)
vip=198.18.100.50

cleanup() {
	[ -n "${ferryd_pid:-}" ] && kill "$ferryd_pid" 2>/dev/null && wait "$ferryd_pid" 2>/dev/null
	[ -d "$pin" ] && nsenter --net=/run/netns/fq-n "$build/ferryctl" --pin-path "$pin" reset --yes \
		>/dev/null 2>&1
	for ns in fq-c fq-n fq-b; do ip netns del $ns 2>/dev/null; done
	rm -rf "$work" "$pin"
}
trap cleanup EXIT INT TERM
cleanup
work=$(mktemp -d /tmp/fq.XXXXXX)

for ns in fq-c fq-n fq-b; do ip netns add $ns && ip -n $ns link set lo up; done
ip -n fq-n link add fq-n0 type veth peer name fq-c netns fq-c
ip -n fq-n link add fq-n1 type veth peer name fq-b1 netns fq-b
ip -n fq-n addr add 198.18.1.1/24 dev fq-n0
ip -n fq-n addr add 198.18.11.1/24 dev fq-n1
ip -n fq-c addr add 198.18.1.2/24 dev fq-c
ip -n fq-b addr add 198.18.11.2/24 dev fq-b1
for l in fq-n:fq-n0 fq-n:fq-n1 fq-c:fq-c fq-b:fq-b1; do ip -n "${l%%:*}" link set "${l#*:}" up; done
ip netns exec fq-n sysctl -qw net.ipv4.ip_forward=1
ip -n fq-n neigh add 198.18.11.2 lladdr "$(ip -n fq-b -o link show fq-b1 | grep -o 'link/ether [^ ]*' | cut -d' ' -f2)" dev fq-n1 nud permanent
node_mac=$(ip -n fq-n -o link show fq-n0 | grep -o 'link/ether [^ ]*' | cut -d' ' -f2)

mkdir -p "$work/conf"
cat >"$work/conf/sd.yaml" <<EOF
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: fq, namespace: default, annotations: {ferry.io/vip: $vip:9000/udp}}
spec:
  predictors:
  - name: main
    traffic: 100
    graph: {name: model, implementation: SKLEARN_SERVER, modelUri: gs://m/iris}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: fq-main-1, namespace: default, labels: {kubernetes.io/service-name: fq-main}}
addressType: IPv4
ports: [{name: udp, port: 9000, protocol: UDP}]
endpoints: [{addresses: [198.18.11.2], conditions: {ready: true}}]
EOF

measure() { # mode
	local mode=$1 i
	if [ "$mode" = tc ]; then
		ip netns exec fq-n ethtool -K fq-n0 gro on >/dev/null
	else
		ip netns exec fq-n ethtool -K fq-n0 gro off >/dev/null
	fi
	nsenter --net=/run/netns/fq-n "$build/ferryd" --config-dir "$work/conf" --iface fq-n0 \
		--reply-iface fq-n1 --pin-path "$pin" ${mode:+--attach $mode} \
		>"$work/ferryd-$mode.log" 2>&1 &
	ferryd_pid=$!
	sleep 2
	nsenter --net=/run/netns/fq-n "$build/ferryctl" --pin-path "$pin" status 2>/dev/null |
		grep -E '^  fq-n' | sed "s/^/    [$mode] /" >&2
	for i in $(seq "$runs"); do
		ip netns exec fq-c "$build/bench/pps_gen" --iface fq-c --dst-mac "$node_mac" \
			--src 198.18.1.2 --dst $vip --dport 9000 --seconds 2 --cpu 0 \
			--count /run/netns/fq-b:fq-b1 2>>"$work/pps_gen.log" |
			python3 -c "import json,sys; d=json.load(sys.stdin); print('$mode', round(d['mpps'],3), round(d['delivered']/d['cpu_seconds']/1e6,3) if d.get('cpu_seconds') else 'na')"
	done
	kill "$ferryd_pid"
	wait "$ferryd_pid" 2>/dev/null
	ferryd_pid=""
	nsenter --net=/run/netns/fq-n "$build/ferryctl" --pin-path "$pin" reset --yes >/dev/null 2>&1
}

pod_seen() {
	ip netns exec fq-b iptables -t raw -L PREROUTING -v -n -x | awk '/fq-sink/ {s += $1} END {print s + 0}'
}

measure_pod() { # default|peer
	local mode=$1 i c0 c1
	ip netns exec fq-n ethtool -K fq-n0 gro on >/dev/null
	ip netns exec fq-b iptables -t raw -A PREROUTING -p udp --dport 9000 -m comment \
		--comment fq-sink -j DROP
	nsenter --net=/run/netns/fq-n "$build/ferryd" --config-dir "$work/conf" --pod-iface 'fq-n*' \
		--pin-path "$pin" $([ "$mode" = peer ] && echo --pod-fast-path=peer) \
		>"$work/ferryd-pod-$mode.log" 2>&1 &
	ferryd_pid=$!
	sleep 2
	for i in $(seq "$runs"); do
		c0=$(pod_seen)
		ip netns exec fq-c "$build/bench/pps_gen" --iface fq-c --dst-mac "$node_mac" \
			--src 198.18.1.2 --dst $vip --dport 9000 --seconds 2 --cpu 0 \
			--count /run/netns/fq-c:fq-c 2>>"$work/pps_gen.log" >"$work/pod.json"
		c1=$(pod_seen)
		python3 -c "import json; d=json.load(open('$work/pod.json')); n=$c1-$c0; print('pod-$mode', round(n/d['seconds']/1e6,3), round(n/d['cpu_seconds']/1e6,3) if d.get('cpu_seconds') else 'na')"
	done
	kill "$ferryd_pid"
	wait "$ferryd_pid" 2>/dev/null
	ferryd_pid=""
	nsenter --net=/run/netns/fq-n "$build/ferryctl" --pin-path "$pin" reset --yes >/dev/null 2>&1
	ip netns exec fq-b iptables -t raw -F PREROUTING
}

echo "mode mpps_wall mpps_per_cpu_second"
if [ "$what" != pod ]; then
	for r in xdp tc; do measure $r; done
fi
[ "$what" != gateway ] && command -v iptables >/dev/null || exit 0
for r in default peer; do measure_pod $r; done
