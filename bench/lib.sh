# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash disable=SC2034 # variables here are used by bench/run
#
# Topology and helpers for `make bench` (bench/run). Sourced, never run.
#
#   client fx-client (198.18.1.2) --fx-c/fx-n0-- node fx-node --fx-nI/fx-bI-- backend fx-bI
#                                                              (198.18.(10+I).2, I = 1..3)
#
# The client sends to the backends' own addresses (the direct floor) from a
# second address, 198.18.1.3 (see fx_direct_source).
#
# Backends 1 and 2 are predictor "main" (weight 90), backend 3 is "canary"
# (weight 10). The same addresses as vmtests/lib/topo.sh, under our own
# prefix (fx) so a benchmark and the end-to-end suite can run side by side.
# Neighbour entries are permanent: no ARP on the measured path, for any
# balancer. fx_cleanup removes every namespace, pin, process and leftover
# interface of ours; bench/run calls it from `trap ... EXIT INT TERM`.

FX_NS_CLIENT=fx-client
FX_NS_NODE=fx-node
FX_NS_CTL=fx-ctl
FX_PIN=/sys/fs/bpf/ferry-fx-bench
FX_PIN_CTL=/sys/fs/bpf/ferry-fx-ctl
FX_NB=3
FX_VIP_TCP=198.18.100.10
FX_VIP_UDP=198.18.100.20
FX_VIP_PORT=8000
FX_BE_PORT=9000
FX_PIDS=()

fx_log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

fx_be_ns() { echo "fx-b$1"; }
fx_be_ip() { echo "198.18.$((10 + $1)).2"; }
fx_gw_ip() { echo "198.18.$((10 + $1)).1"; }

# Runs a command in a namespace. `ip netns exec` remounts /sys: fine for
# sysctl and servers, wrong for anything that needs /sys/fs/bpf (fx_nsenter).
fx_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

fx_nsenter() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

fx_mac() { ip -n "$1" -j link show dev "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])'; }

# fx_direct_source CLIENT_NS IF NET(a.b.c) NODE_NS NODE_IF BACKEND_NET...: the
# client's second address, NET.3, is the source of everything it sends to
# the backends' own addresses (the direct floor). Connection: close leaves a
# TIME_WAIT socket in a backend for every client address:port, and the client
# derives a SYN's sequence number and TCP timestamps from both addresses of
# its connection (the VIP, or the backend for direct). Sharing one client
# address, a direct SYN meets the VIP cases' TIME_WAIT sockets (and the other
# way round) with numbers that look old: the backend answers with an ACK, the
# client resets and retries after a second. Measured: ~1,500 such SYN
# retransmits in each 4 s close run, rates swinging from 16k to 1.3k/s.
fx_direct_source() {
	local ns=$1 dev=$2 net=$3 node=$4 ndev=$5 b
	shift 5
	ip -n "$ns" addr add "$net.3/24" dev "$dev" || return 1
	for b in "$@"; do
		ip -n "$ns" route add "$b.0/24" via "$net.1" src "$net.3" || return 1
	done
	ip -n "$node" neigh replace "$net.3" lladdr "$(fx_mac "$ns" "$dev")" dev "$ndev" nud permanent
}

fx_topo_create() {
	local i ns
	ip netns add "$FX_NS_CLIENT" && ip netns add "$FX_NS_NODE" || return 1
	for ns in "$FX_NS_CLIENT" "$FX_NS_NODE"; do ip -n "$ns" link set lo up; done
	fx_ns "$FX_NS_NODE" sysctl -qw net.ipv4.ip_forward=1
	ip -n "$FX_NS_NODE" link add fx-n0 type veth peer name fx-c netns "$FX_NS_CLIENT" || return 1
	ip -n "$FX_NS_NODE" addr add 198.18.1.1/24 dev fx-n0
	ip -n "$FX_NS_NODE" link set fx-n0 up
	ip -n "$FX_NS_CLIENT" addr add 198.18.1.2/24 dev fx-c
	ip -n "$FX_NS_CLIENT" link set fx-c up
	ip -n "$FX_NS_CLIENT" route add default via 198.18.1.1
	# Full checksums from the client, as from a real wire (see vmtests/lib/topo.sh).
	fx_ns "$FX_NS_CLIENT" ethtool -K fx-c tx off >/dev/null 2>&1
	for ((i = 1; i <= FX_NB; i++)); do
		ns=$(fx_be_ns "$i")
		ip netns add "$ns" || return 1
		ip -n "$ns" link set lo up
		ip -n "$FX_NS_NODE" link add "fx-n$i" type veth peer name "fx-b$i" netns "$ns" || return 1
		ip -n "$FX_NS_NODE" addr add "$(fx_gw_ip "$i")/24" dev "fx-n$i"
		ip -n "$FX_NS_NODE" link set "fx-n$i" up
		ip -n "$ns" addr add "$(fx_be_ip "$i")/24" dev "fx-b$i"
		ip -n "$ns" link set "fx-b$i" up
		ip -n "$ns" route add default via "$(fx_gw_ip "$i")"
		ip -n "$FX_NS_NODE" neigh replace "$(fx_be_ip "$i")" lladdr "$(fx_mac "$ns" "fx-b$i")" \
			dev "fx-n$i" nud permanent
		ip -n "$ns" neigh replace "$(fx_gw_ip "$i")" lladdr "$(fx_mac "$FX_NS_NODE" "fx-n$i")" \
			dev "fx-b$i" nud permanent
	done
	ip -n "$FX_NS_NODE" neigh replace 198.18.1.2 lladdr "$(fx_mac "$FX_NS_CLIENT" fx-c)" \
		dev fx-n0 nud permanent
	fx_direct_source "$FX_NS_CLIENT" fx-c 198.18.1 "$FX_NS_NODE" fx-n0 198.18.11 198.18.12 198.18.13 ||
		return 1
	ip -n "$FX_NS_CLIENT" neigh replace 198.18.1.1 lladdr "$(fx_mac "$FX_NS_NODE" fx-n0)" \
		dev fx-c nud permanent
	# GRO on the node's client-facing veth, as a NIC driver does: it also
	# gives the veth the NAPI ring that the packet generator's redirected XDP
	# frames need (Linux 5.13+), whatever is or is not attached there, so
	# every case receives the same way.
	fx_ns "$FX_NS_NODE" ethtool -K fx-n0 gro on >/dev/null 2>&1
}

# --- manifests: two deployments, TCP and UDP, split 90/10 -----------------

# fx_sdep DIR NAME VIP PROTO MAIN_WEIGHT CANARY_WEIGHT: writes the
# SeldonDeployment NAME and its two EndpointSlices, atomically (temp + rename).
fx_write_deployment() {
	local dir=$1 name=$2 vip=$3 proto=$4 wm=$5 wc=$6 pred addrs f
	for pred in main canary; do
		if [ "$pred" = main ]; then addrs="$(fx_be_ip 1) $(fx_be_ip 2)"; else addrs="$(fx_be_ip 3)"; fi
		f="$dir/.$name-$pred.yaml.tmp"
		{
			printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n'
			printf '  name: %s-%s-fx\n  namespace: bench\n  labels:\n' "$name" "$pred"
			printf '    kubernetes.io/service-name: %s-%s\naddressType: IPv4\n' "$name" "$pred"
			printf 'ports:\n- name: http\n  port: %d\n  protocol: %s\nendpoints:\n' \
				"$FX_BE_PORT" "$proto"
			for a in $addrs; do
				printf -- '- addresses: ["%s"]\n  conditions: {ready: true, serving: true, terminating: false}\n' "$a"
			done
		} >"$f" && mv -f "$f" "$dir/$name-$pred.yaml"
	done
	f="$dir/.$name.yaml.tmp"
	{
		printf 'apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata:\n'
		printf '  name: %s\n  namespace: bench\n  annotations:\n    ferry.io/vip: "%s"\n' \
			"$name" "$vip"
		printf 'spec:\n  name: %s\n  predictors:\n' "$name"
		printf '  - name: main\n    replicas: 2\n    traffic: %d\n    graph: {name: classifier, type: MODEL, implementation: SKLEARN_SERVER, modelUri: gs://seldon-models/sklearn/iris}\n' "$wm"
		printf '  - name: canary\n    replicas: 1\n    traffic: %d\n    graph: {name: classifier, type: MODEL, implementation: SKLEARN_SERVER, modelUri: gs://seldon-models/sklearn/iris}\n' "$wc"
	} >"$f" && mv -f "$f" "$dir/$name.yaml"
}

# --- ferryd ------------------------------------------------------------------

# fx_cpu_mark PID: "CPU_MS WALL_S" now, for fx_cpu_note: the CPU time process PID
# has used (user + system, all its threads) and the wall clock.
fx_cpu_mark() {
	local s a
	s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "- $EPOCHREALTIME"; return; }
	# After the command name (in parentheses, may hold spaces): state is field 0,
	# utime 11, stime 12, in clock ticks.
	read -r -a a <<<"${s##*) }"
	echo "$(((a[11] + a[12]) * 1000 / FX_CLK_TCK)) $EPOCHREALTIME"
}
FX_CLK_TCK=$(getconf CLK_TCK)

# fx_cpu_note FILE CASE ROUND PID MARK: one JSON line in FILE, the CPU time PID
# used since MARK (fx_cpu_mark) and the wall time between. ferryd's own CPU
# during a case: the packet-rate figures count the measured CPU only, so a
# control plane doing work per packet or per connection would not show there.
fx_cpu_note() {
	local file=$1 name=$2 round=$3 pid=$4 c0 t0 now
	read -r c0 t0 <<<"$5"
	read -r -a now <<<"$(fx_cpu_mark "$pid")"
	[ "$c0" = - ] || [ "${now[0]}" = - ] && return 0
	printf '{"case": "%s", "round": %s, "cpu_ms": %s, "wall_s": %s}\n' "$name" "$round" \
		"$((now[0] - c0))" "$(awk -v a="$t0" -v b="${now[1]}" 'BEGIN { printf "%.3f", b - a }')" \
		>>"$file"
}

# fx_log_mark LOG: the number of the line the next writer to LOG starts at.
fx_log_mark() { echo $(($([ -f "$1" ] && wc -l <"$1" || echo 0) + 1)); }

# fx_wait_log LOG FROM PID PATTERN...: true once every PATTERN is in LOG from
# line FROM on, within 10 s, while PID lives. Each case of each round appends
# to its log: a line of an earlier start must not count (it did, and the
# rounds after the first measured ferry while it was still loading).
fx_wait_log() {
	local log=$1 from=$2 pid=$3 i p ok
	shift 3
	for ((i = 0; i < 100; i++)); do
		ok=1
		for p in "$@"; do
			tail -n +"$from" "$log" 2>/dev/null | grep -q -- "$p" || ok=0
		done
		[ "$ok" = 1 ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

# fx_ferry_start CONF LOG [FERRYD_ARGS...]: ferryd in the node, client-facing XDP+TC, reply TC on
# the backend-facing veths; waits until both VIPs are in the kernel.
fx_ferry_start() {
	local conf=$1 log=$2 from
	shift 2
	from=$(fx_log_mark "$log")
	# nsenter itself, not the fx_nsenter function: in the background a function
	# runs in a subshell, $! is that subshell, and killing it left ferryd running
	# (every case's ferryd lived on until the end of the run). nsenter execs
	# ferryd, so $! is ferryd.
	nsenter --net="/run/netns/$FX_NS_NODE" "$FERRY_BUILD/ferryd" --config-dir "$conf" --iface fx-n0 \
		--reply-iface fx-n1 --reply-iface fx-n2 --reply-iface fx-n3 --pin-path "$FX_PIN" \
		--log-level info "$@" >>"$log" 2>&1 &
	FX_FERRYD_PID=$!
	FX_PIDS+=("$FX_FERRYD_PID")
	fx_wait_log "$log" "$from" "$FX_FERRYD_PID" 'sync: 2 services' && return 0
	fx_log "ferryd did not sync two services within 10 s; its log:"
	tail -n 20 "$log" >&2
	return 1
}

# fx_ferry_stop: stops ferryd and removes its data plane (XDP, TC, pins).
fx_ferry_stop() {
	if [ -n "${FX_FERRYD_PID:-}" ]; then
		kill -TERM "$FX_FERRYD_PID" 2>/dev/null
		wait "$FX_FERRYD_PID" 2>/dev/null
		FX_FERRYD_PID=
	fi
	fx_reap ferryd "$FX_NS_NODE"
	fx_ferry_reset "$FX_NS_NODE" "$FX_PIN" fx-n0 fx-n1 fx-n2 fx-n3
}

# fx_reap NAME NS: no NAME may outlive its case in NS (a stray one would keep
# following netlink and the config with its own maps): says so and kills it.
fx_reap() {
	local pid left=""
	for pid in $(ip netns pids "$2" 2>/dev/null); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || continue
		left+=" $pid"
		kill -KILL "$pid" 2>/dev/null
	done
	[ -z "$left" ] || fx_log "$1 still running in $2 after its stop (pids$left): killed"
}

# fx_ferry_reset NS PIN IFACE...: ferryctl reset, then by hand what may remain.
fx_ferry_reset() {
	local ns=$1 pin=$2 i
	shift 2
	[ -e "/run/netns/$ns" ] || { rm -rf "$pin"; return 0; }
	if [ -d "$pin" ] && [ -x "$FERRY_BUILD/ferryctl" ]; then
		fx_nsenter "$ns" "$FERRY_BUILD/ferryctl" --pin-path "$pin" reset --yes >/dev/null 2>&1
	fi
	for i in "$@"; do
		ip -n "$ns" link set dev "$i" xdp off 2>/dev/null
		ip netns exec "$ns" tc qdisc del dev "$i" clsact 2>/dev/null
	done
	rm -rf "$pin"
}

# --- iptables: kube-proxy's model ------------------------------------------------

# fx_iptables_rules VIP PORT PROTO: iptables-restore input in kube-proxy's
# shape: PREROUTING -> FX-SERVICES -> FX-SVC-* (one rule per endpoint with
# `-m statistic --mode random --probability`, sequential) -> FX-SEP-* (DNAT).
# Endpoint weights: main's 90% over two backends, canary's 10% on one.
fx_iptables_rules() {
	python3 - "$@" <<'EOF'
import sys
specs = [a.split(",") for a in sys.argv[1:]]  # vip,port,proto,tag
eps = [("198.18.11.2", 0.45), ("198.18.12.2", 0.45), ("198.18.13.2", 0.10)]
out = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
       ":POSTROUTING ACCEPT [0:0]", ":FX-SERVICES - [0:0]"]
rules = ["-A PREROUTING -m comment --comment fx-bench -j FX-SERVICES"]
for vip, port, proto, tag in specs:
    svc = "FX-SVC-%s" % tag
    out.append(":%s - [0:0]" % svc)
    rules.append("-A FX-SERVICES -d %s/32 -p %s -m %s --dport %s -j %s" % (vip, proto, proto, port, svc))
    left = 1.0
    for i, (addr, w) in enumerate(eps):
        sep = "FX-SEP-%s%d" % (tag, i)
        out.append(":%s - [0:0]" % sep)
        stat = ""
        if i < len(eps) - 1:
            stat = " -m statistic --mode random --probability %.10f" % (w / left)
        rules.append("-A %s%s -j %s" % (svc, stat, sep))
        rules.append("-A %s -p %s -m %s -j DNAT --to-destination %s:9000" % (sep, proto, proto, addr))
        left -= w
print("\n".join(out + rules + ["COMMIT"]))
EOF
}

fx_iptables_on() {
	fx_iptables_rules "$FX_VIP_TCP,$FX_VIP_PORT,tcp,TCP" "$FX_VIP_UDP,$FX_VIP_PORT,udp,UDP" |
		fx_ns "$FX_NS_NODE" iptables-restore
}

# Removes the rules and the nat table itself: with the nf_tables backend an
# empty table still hooks conntrack into every packet of the namespace.
fx_iptables_off() {
	[ -e "/run/netns/$FX_NS_NODE" ] || return 0
	fx_ns "$FX_NS_NODE" iptables -t nat -F 2>/dev/null
	fx_ns "$FX_NS_NODE" iptables -t nat -X 2>/dev/null
	fx_ns "$FX_NS_NODE" nft delete table ip nat 2>/dev/null
	fx_ns "$FX_NS_NODE" conntrack -F >/dev/null 2>&1
	return 0
}

# --- cleanup -------------------------------------------------------------------

fx_cleanup() {
	local pid ns l
	for pid in "${FX_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	# Whatever else still runs inside our own namespaces (nginx workers, haproxy).
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^fx-'); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
	done
	sleep 0.3
	for pid in "${FX_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^fx-'); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	fx_iptables_off
	fx_pod_iptables_off
	fx_ferry_reset "$FX_NS_NODE" "$FX_PIN" fx-n0 fx-n1 fx-n2 fx-n3
	fx_ferry_reset "$FX_PNS_NODE" "$FX_PIN_POD" fxp-c fxp-b1 fxn-l
	fx_ferry_reset "$FX_NS_CTL" "$FX_PIN_CTL" fx-k0
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^fx-'); do
		ip netns del "$ns" 2>/dev/null
	done
	for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^fx-'); do
		ip link del "$l" 2>/dev/null
	done
	return 0
}

# --- pod mode: pods on a node, and a second node --------------------------------
#
#   fx-pc (client pod 198.18.71.2) --eth0/fxp-c--  fx-pn (node)  --fxp-b1/eth0-- fx-pb1 198.18.72.2
#                                                   |fxn-l 198.18.90.1
#                                                   |fxn-r 198.18.90.2
#                                                 fx-pn2 (node 2) --fxq-r1/eth0-- fx-pr1 198.18.81.2
#
# As a CNI plugin wires pods: a /24 per pod, the host end of each pod's veth
# named by a pattern (fxp-* on node 1, what ferryd --pod-iface matches), a
# route per remote pod network over the node-to-node link. Neighbours are
# permanent, as in the gateway topology. The client pod reaches the backend
# pods directly from its second address, 198.18.71.3, as in the gateway
# topology (fx_direct_source). Services: one VIP with its backend
# pod on the same node (fx-pb1), one with its backend on node 2 (fx-pr1),
# TCP and UDP each.

FX_PNS_NODE=fx-pn
FX_PNS_NODE2=fx-pn2
FX_PNS_CLIENT=fx-pc
FX_PIN_POD=/sys/fs/bpf/ferry-fx-pod

FX_PVIP_LOCAL=198.18.200.10
FX_PVIP_REMOTE=198.18.200.20
FX_PIP_CLIENT=198.18.71.2
FX_PIP_LOCAL=198.18.72.2
FX_PIP_REMOTE=198.18.81.2

# fx_pod_add NODE_NS POD_NS HOST_IF SUBNET(a.b.c): a pod with eth0 at .2, the host end at .1.
fx_pod_add() {
	local node=$1 ns=$2 hif=$3 net=$4
	ip netns add "$ns" && ip -n "$ns" link set lo up || return 1
	ip -n "$node" link add "$hif" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$node" addr add "$net.1/24" dev "$hif"
	ip -n "$ns" addr add "$net.2/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$node" link set "$hif" up
	ip -n "$ns" route add default via "$net.1"
	ip -n "$node" neigh replace "$net.2" lladdr "$(fx_mac "$ns" eth0)" dev "$hif" nud permanent
	ip -n "$ns" neigh replace "$net.1" lladdr "$(fx_mac "$node" "$hif")" dev eth0 nud permanent
}

fx_pod_topo_create() {
	local n
	for n in "$FX_PNS_NODE" "$FX_PNS_NODE2"; do
		ip netns add "$n" && ip -n "$n" link set lo up || return 1
		fx_ns "$n" sysctl -qw net.ipv4.ip_forward=1
	done
	fx_pod_add "$FX_PNS_NODE" "$FX_PNS_CLIENT" fxp-c 198.18.71 || return 1
	fx_pod_add "$FX_PNS_NODE" fx-pb1 fxp-b1 198.18.72 || return 1
	fx_pod_add "$FX_PNS_NODE2" fx-pr1 fxq-r1 198.18.81 || return 1
	ip -n "$FX_PNS_NODE" link add fxn-l type veth peer name fxn-r netns "$FX_PNS_NODE2" || return 1
	ip -n "$FX_PNS_NODE" addr add 198.18.90.1/24 dev fxn-l
	ip -n "$FX_PNS_NODE2" addr add 198.18.90.2/24 dev fxn-r
	ip -n "$FX_PNS_NODE" link set fxn-l up
	ip -n "$FX_PNS_NODE2" link set fxn-r up
	ip -n "$FX_PNS_NODE" neigh replace 198.18.90.2 lladdr "$(fx_mac "$FX_PNS_NODE2" fxn-r)" \
		dev fxn-l nud permanent
	ip -n "$FX_PNS_NODE2" neigh replace 198.18.90.1 lladdr "$(fx_mac "$FX_PNS_NODE" fxn-l)" \
		dev fxn-r nud permanent
	ip -n "$FX_PNS_NODE" route add 198.18.81.0/24 via 198.18.90.2
	ip -n "$FX_PNS_NODE2" route add 198.18.71.0/24 via 198.18.90.1
	ip -n "$FX_PNS_NODE2" route add 198.18.72.0/24 via 198.18.90.1
	fx_direct_source "$FX_PNS_CLIENT" eth0 198.18.71 "$FX_PNS_NODE" fxp-c 198.18.72 198.18.81 || return 1
	# Full checksums from the client pod, as in the gateway topology.
	fx_ns "$FX_PNS_CLIENT" ethtool -K eth0 tx off >/dev/null 2>&1
}

# fx_write_sdep1 DIR NAME VIP PROTO ADDR: a SeldonDeployment with one
# predictor (traffic 100) whose one endpoint is ADDR:$FX_BE_PORT.
fx_write_sdep1() {
	local dir=$1 name=$2 vip=$3 proto=$4 addr=$5 f
	f="$dir/.$name.yaml.tmp"
	{
		printf 'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n'
		printf '  name: %s-main-fx\n  namespace: bench\n  labels:\n' "$name"
		printf '    kubernetes.io/service-name: %s-main\naddressType: IPv4\n' "$name"
		printf 'ports:\n- name: http\n  port: %d\n  protocol: %s\nendpoints:\n' "$FX_BE_PORT" "$proto"
		printf -- '- addresses: ["%s"]\n  conditions: {ready: true, serving: true, terminating: false}\n' "$addr"
		printf -- '---\napiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata:\n'
		printf '  name: %s\n  namespace: bench\n  annotations:\n    ferry.io/vip: "%s"\n' "$name" "$vip"
		printf 'spec:\n  name: %s\n  predictors:\n' "$name"
		printf '  - name: main\n    replicas: 1\n    traffic: 100\n    graph: {name: classifier, type: MODEL, implementation: SKLEARN_SERVER, modelUri: gs://seldon-models/sklearn/iris}\n'
	} >"$f" && mv -f "$f" "$dir/$name.yaml"
}

# fx_pod_ferry_start CONF LOG [FERRYD_ARGS...]: ferryd on node 1 in pod mode,
# as tests/podmode.sh runs it (--pod-iface; no --iface).
fx_pod_ferry_start() {
	local conf=$1 log=$2 from
	shift 2
	from=$(fx_log_mark "$log")
	# nsenter, not fx_nsenter: $! must be ferryd itself (see fx_ferry_start).
	nsenter --net="/run/netns/$FX_PNS_NODE" "$FERRY_BUILD/ferryd" --config-dir "$conf" \
		--pod-iface 'fxp-*' --pin-path "$FX_PIN_POD" --log-level info "$@" >>"$log" 2>&1 &
	FX_POD_FERRYD_PID=$!
	FX_PIDS+=("$FX_POD_FERRYD_PID")
	fx_wait_log "$log" "$from" "$FX_POD_FERRYD_PID" 'sync: 4 services' 'fxp-c' && return 0
	fx_log "pod mode: ferryd did not sync four services within 10 s; its log:"
	tail -n 20 "$log" >&2
	return 1
}

fx_pod_ferry_stop() {
	if [ -n "${FX_POD_FERRYD_PID:-}" ]; then
		kill -TERM "$FX_POD_FERRYD_PID" 2>/dev/null
		wait "$FX_POD_FERRYD_PID" 2>/dev/null
		FX_POD_FERRYD_PID=
	fi
	fx_reap ferryd "$FX_PNS_NODE"
	fx_ferry_reset "$FX_PNS_NODE" "$FX_PIN_POD" fxp-c fxp-b1 fxn-l
}

# kube-proxy's DNAT for the two pod-mode VIPs, in node 1 (where the client
# pod's traffic arrives), in the same shape as fx_iptables_rules.
fx_pod_iptables_on() {
	python3 -c '
specs = [("198.18.200.10", "198.18.72.2"), ("198.18.200.20", "198.18.81.2")]
out = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
       ":POSTROUTING ACCEPT [0:0]", ":FX-SERVICES - [0:0]"]
rules = ["-A PREROUTING -m comment --comment fx-bench -j FX-SERVICES"]
for i, (vip, be) in enumerate(specs):
    for proto in ("tcp", "udp"):
        svc, sep = "FX-SVC-%s%d" % (proto.upper(), i), "FX-SEP-%s%d" % (proto.upper(), i)
        out += [":%s - [0:0]" % svc, ":%s - [0:0]" % sep]
        rules.append("-A FX-SERVICES -d %s/32 -p %s -m %s --dport 8000 -j %s" % (vip, proto, proto, svc))
        rules.append("-A %s -j %s" % (svc, sep))
        rules.append("-A %s -p %s -m %s -j DNAT --to-destination %s:9000" % (sep, proto, proto, be))
print("\n".join(out + rules + ["COMMIT"]))
' | fx_ns "$FX_PNS_NODE" iptables-restore
}

fx_pod_iptables_off() {
	[ -e "/run/netns/$FX_PNS_NODE" ] || return 0
	fx_ns "$FX_PNS_NODE" iptables -t nat -F 2>/dev/null
	fx_ns "$FX_PNS_NODE" iptables -t nat -X 2>/dev/null
	fx_ns "$FX_PNS_NODE" nft delete table ip nat 2>/dev/null
	fx_ns "$FX_PNS_NODE" conntrack -F >/dev/null 2>&1
	return 0
}
