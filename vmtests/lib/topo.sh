# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Topology library for ferry's end-to-end scenarios and the demo: a client,
# a node that runs ferryd, and N backends, each in its own network namespace,
# each wired to the node by its own veth pair. Sourced, never run.
#
#   client (198.18.1.2, 2001:db8:1::2) --veth-- node --veth-- backend i
#                                                      (198.18.(10+i).2, 2001:db8:(10+i)::2)
#
# The client's default route points at the node, so the VIPs (198.18.100.0/24,
# 2001:db8:100::/64) reach it; the backends' default routes point at the node
# too, so their replies come back through it and ferry can translate them.
# The node has no route out of the test: a packet ferry does not handle dies.
#
# Every name carries the scenario's prefix: namespaces fe-SCENARIO-*,
# interfaces feTAG-* (TAG <= 6 characters, for the 15-character limit), pins
# /sys/fs/bpf/ferry-fe-SCENARIO. fe_cleanup removes all of it and runs from
# `trap ... EXIT INT TERM`, so a failing or interrupted run leaves nothing.
#
# Environment:
#   FERRY_BUILD  where ferryd/ferryctl are (default: build, relative to the repo)
#   FE_LB        ferry (default) or iptables: the iptables stand-in (DNAT with
#                conntrack) replaces ferryd, to test the suite itself
#   FE_KEEP=1    keep the run directory (logs, manifests) after the run

FE_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FE_BIN="$FE_TOP/vmtests/bin"
FERRY_BUILD=${FERRY_BUILD:-build}
case "$FERRY_BUILD" in /*) ;; *) FERRY_BUILD="$FE_TOP/$FERRY_BUILD" ;; esac
FE_LB=${FE_LB:-ferry}
FE_PY=${PYTHON:-python3}

FE_PIDS=()
FE_RESULT=""
FE_NBACKENDS=0
FERRYD_PID=""
FE_FERRYD_RC=""

fe_log() { echo "[$(date +%H:%M:%S.%3N)] $*" >&2; }

# --- results: exactly one line on stdout per scenario --------------------

fe_pass() {
	FE_RESULT=PASS
	echo "PASS e2e/$FE_SCN${1:+ ($1)}"
	exit 0
}

fe_fail() {
	FE_RESULT=FAIL
	echo "FAIL e2e/$FE_SCN: $*"
	fe_dump_logs
	exit 1
}

fe_skip() {
	FE_RESULT=SKIP
	echo "SKIP e2e/$FE_SCN: $*"
	echo "*** SKIPPED e2e/$FE_SCN: $* ***" >&2
	exit 0
}

fe_dump_logs() {
	[ -n "${FE_RUN:-}" ] || return 0
	if [ -s "$FE_RUN/ferryd.log" ]; then
		echo "--- last 40 lines of ferryd.log ($FE_RUN/ferryd.log)" >&2
		tail -n 40 "$FE_RUN/ferryd.log" >&2
	fi
}

# --- setup and cleanup ---------------------------------------------------

# fe_init SCENARIO TAG: names, run directory, cleanup trap. TAG: <= 6 chars.
fe_init() {
	FE_SCN=$1
	FE_TAG=$2
	FE_PFX="fe-$FE_SCN"
	FE_CLIENT="$FE_PFX-client"
	FE_NODE="$FE_PFX-node"
	FE_PIN="/sys/fs/bpf/ferry-$FE_PFX"
	FE_IF_CLIENT="fe$FE_TAG-c"     # in the client namespace
	FE_IF_NODE_CLIENT="fe$FE_TAG-n0" # in the node, facing the client
	FE_METRICS="127.0.0.1:9464"    # inside the node namespace
	trap fe_cleanup EXIT
	trap 'fe_fail "interrupted by a signal"' INT TERM
	# A previous run killed with -9 may have left its pieces: remove them first.
	fe_cleanup_quiet
	FE_RUN=$(mktemp -d "/tmp/$FE_PFX.XXXXXX")
	FE_CONF="$FE_RUN/conf"
	FE_SPECS="$FE_RUN/specs"
	mkdir -p "$FE_CONF" "$FE_SPECS"
}

fe_require_root() {
	[ "$(id -u)" -eq 0 ] || fe_skip "needs root (network namespaces, BPF); run as root"
	command -v ip >/dev/null || fe_skip "needs iproute2 (ip)"
	# Pins need bpffs at /sys/fs/bpf; a fresh machine may not have it mounted.
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf ||
		fe_skip "no bpffs at /sys/fs/bpf and mounting one failed"
}

# Skips loudly when there is no ferryd to test (unless the stand-in is in use).
fe_require_ferryd() {
	[ "$FE_LB" = iptables ] && return 0
	[ -x "$FERRY_BUILD/ferryd" ] ||
		fe_skip "$FERRY_BUILD/ferryd not built (make all, or set FERRY_BUILD)"
}

fe_backend_ns() { echo "$FE_PFX-b$1"; }
fe_backend_if() { echo "fe$FE_TAG-b$1"; }
fe_node_if() { echo "fe$FE_TAG-n$1"; }
fe_backend_ip() { echo "198.18.$((10 + $1)).2"; }
fe_backend_ip6() { echo "2001:db8:$((10 + $1))::2"; }

# Runs a command in a namespace. Not for ferryd: see fe_ferryd_start.
fe_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

fe_topo_create() {
	local n=$1 i ns
	FE_NBACKENDS=$n
	ip netns add "$FE_CLIENT" || fe_fail "ip netns add $FE_CLIENT"
	ip netns add "$FE_NODE" || fe_fail "ip netns add $FE_NODE"
	for ns in "$FE_CLIENT" "$FE_NODE"; do
		ip -n "$ns" link set lo up
	done
	fe_ns "$FE_NODE" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	# No DAD: addresses are usable at once instead of "tentative" for a second.
	for ns in "$FE_CLIENT" "$FE_NODE"; do
		fe_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	done

	ip -n "$FE_NODE" link add "$FE_IF_NODE_CLIENT" type veth peer name "$FE_IF_CLIENT" \
		netns "$FE_CLIENT" || fe_fail "veth client"
	ip -n "$FE_NODE" addr add 198.18.1.1/24 dev "$FE_IF_NODE_CLIENT"
	ip -n "$FE_NODE" addr add 2001:db8:1::1/64 dev "$FE_IF_NODE_CLIENT" nodad
	ip -n "$FE_NODE" link set "$FE_IF_NODE_CLIENT" up
	ip -n "$FE_CLIENT" addr add 198.18.1.2/24 dev "$FE_IF_CLIENT"
	ip -n "$FE_CLIENT" addr add 2001:db8:1::2/64 dev "$FE_IF_CLIENT" nodad
	ip -n "$FE_CLIENT" link set "$FE_IF_CLIENT" up
	ip -n "$FE_CLIENT" route add default via 198.18.1.1
	ip -n "$FE_CLIENT" -6 route add default via 2001:db8:1::1
	# The VIP ranges, explicitly (the default route covers them too).
	ip -n "$FE_CLIENT" route add 198.18.100.0/24 via 198.18.1.1
	ip -n "$FE_CLIENT" route add 198.18.200.0/21 via 198.18.1.1
	ip -n "$FE_CLIENT" -6 route add 2001:db8:100::/64 via 2001:db8:1::1
	# The client stands for a machine across a physical wire: its frames carry
	# full checksums. A veth with tx offload on hands the node CHECKSUM_PARTIAL
	# packets whose TCP checksum field holds only the pseudo-header sum, which
	# would hide bugs in ferry's incremental checksum updates (and is not what
	# a NIC receives). Only the client end is changed; backends stay as created.
	fe_ns "$FE_CLIENT" ethtool -K "$FE_IF_CLIENT" tx off >/dev/null 2>&1 ||
		fe_fail "ethtool -K $FE_IF_CLIENT tx off failed"

	for ((i = 1; i <= n; i++)); do
		ns=$(fe_backend_ns "$i")
		ip netns add "$ns" || fe_fail "ip netns add $ns"
		ip -n "$ns" link set lo up
		fe_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
		# Backends model pods ferry does not configure: no XDP, offloads untouched.
		ip -n "$FE_NODE" link add "$(fe_node_if "$i")" type veth peer name "$(fe_backend_if "$i")" \
			netns "$ns" || fe_fail "veth backend $i"
		ip -n "$FE_NODE" addr add "198.18.$((10 + i)).1/24" dev "$(fe_node_if "$i")"
		ip -n "$FE_NODE" addr add "2001:db8:$((10 + i))::1/64" dev "$(fe_node_if "$i")" nodad
		ip -n "$FE_NODE" link set "$(fe_node_if "$i")" up
		ip -n "$ns" addr add "$(fe_backend_ip "$i")/24" dev "$(fe_backend_if "$i")"
		ip -n "$ns" addr add "$(fe_backend_ip6 "$i")/64" dev "$(fe_backend_if "$i")" nodad
		ip -n "$ns" link set "$(fe_backend_if "$i")" up
		ip -n "$ns" route add default via "198.18.$((10 + i)).1"
		ip -n "$ns" -6 route add default via "2001:db8:$((10 + i))::1"
	done
}

# fe_reply_ifaces: "--reply-iface X" for every backend-facing node interface.
fe_reply_iface_args() {
	local i
	for ((i = 1; i <= FE_NBACKENDS; i++)); do
		printf -- '--reply-iface %s ' "$(fe_node_if "$i")"
	done
}

# fe_server I NAME PREDICTOR [model_server args...]: starts a model server in
# backend I, listening on every address (IPv4 and IPv6) port 9000.
fe_server() {
	local i=$1 name=$2 pred=$3
	shift 3
	# `ip netns exec` directly, not fe_ns: $! must be the server's own pid.
	ip netns exec "$(fe_backend_ns "$i")" "$FE_PY" "$FE_BIN/model_server.py" --addr :: --port 9000 \
		--name "$name" --predictor "$pred" "$@" >>"$FE_RUN/server-$i.log" 2>&1 &
	FE_PIDS+=($!)
}

# fe_std_backends [model_server args...]: the usual three backends: main-0
# and main-1 (predictor main) in backends 1 and 2, canary-0 in backend 3.
fe_std_backends() {
	fe_topo_create 3
	fe_server 1 main-0 main "$@"
	fe_server 2 main-1 main "$@"
	fe_server 3 canary-0 canary "$@"
	[[ " $* " == *" --udp "* ]] && FE_UDP=1
	fe_servers_wait || fe_fail "model servers did not start"
}

# fe_burst TARGET N OUT: N new connections (one request each); JSON to OUT.
fe_burst() {
	fe_loadgen --target "$1" --close --connections "$2" --concurrency 32 --timeout 2 >"$3" ||
		fe_fail "load client failed (burst to $1)"
}

# fe_only OUT PREDICTOR: every request in OUT answered, all by PREDICTOR.
fe_only() {
	local got
	got=$(fe_json "$1" 'd["predictors"]')
	[ "$(fe_json "$1" 'd["error_total"]')" -eq 0 ] ||
		fe_fail "$3failed requests: $(fe_json "$1" 'd["errors"]')"
	[ "$(fe_json "$1" "d['ok'] > 0 and set(d['predictors']) == {'$2'}")" = True ] ||
		fe_fail "${3}new connections should all go to $2, got $got"
}

# Waits until every started backend answers on its own address.
fe_servers_wait() {
	local i probe
	for ((i = 1; i <= FE_NBACKENDS; i++)); do
		probe="import socket; socket.create_connection(('$(fe_backend_ip "$i")', 9000), 1).close()"
		[ "${FE_UDP:-0}" = 1 ] && probe="import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5); s.sendto(b'x', ('$(fe_backend_ip "$i")', 9000)); s.recv(100)"
		fe_wait 10 fe_ns "$(fe_backend_ns "$i")" "$FE_PY" -c "$probe" 2>/dev/null || return 1
	done
}

# fe_loadgen ARGS...: the load client in the client namespace; JSON on stdout.
fe_loadgen() {
	fe_ns "$FE_CLIENT" "$FE_PY" "$FE_BIN/loadgen.py" "$@"
}

# fe_loadgen_bg OUT ARGS...: same in the background; JSON to OUT; pid in FE_LAST_PID.
fe_loadgen_bg() {
	local out=$1
	shift
	ip netns exec "$FE_CLIENT" "$FE_PY" "$FE_BIN/loadgen.py" "$@" >"$out" 2>>"$FE_RUN/loadgen.log" &
	# shellcheck disable=SC2034 # read by the scenarios
	FE_LAST_PID=$!
	FE_PIDS+=($!)
}

# fe_loadgen_stop PID: SIGTERM (the load client then prints its summary) and wait.
fe_loadgen_stop() {
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# fe_json FILE PYTHON-EXPR: evaluates EXPR with d = the JSON document.
fe_json() {
	"$FE_PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(json.dumps(r) if isinstance(r, (dict, list)) else r)' "$1" "$2"
}

# fe_share_check FILE PREDICTOR EXPECTED: checks the observed share of
# PREDICTOR among answered requests is within 4.5 standard deviations of
# EXPECTED (a fraction); prints the observation. Returns 1 when it is not.
# 4.5, not 3: a run makes a few dozen of these checks, and at 3 sd each fails
# by chance 0.27% of the time (a run, several percent: CI saw a 50/50 split at
# 3.15 sd); at 4.5 sd 0.0007% each. What it still catches at 2,400
# connections: 50/50 judged within +-4.6 points, 90/10 within +-2.8.
fe_share_check() {
	"$FE_PY" - "$1" "$2" "$3" <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
pred, p = sys.argv[2], float(sys.argv[3])
n = sum(d["predictors"].values())
k = d["predictors"].get(pred, 0)
if n == 0:
    print("no answered request"); sys.exit(1)
obs = k / n
sd = math.sqrt(p * (1 - p) / n)
z = 4.5
ok = abs(obs - p) <= z * sd if sd > 0 else k == round(p * n)
print("%s share %.4f (%d/%d), expected %.4f +- %.4f (%g sd)" % (pred, obs, k, n, p, z * sd, z))
sys.exit(0 if ok else 1)
EOF
}

# fe_wait TIMEOUT_S CMD...: retries CMD every 0.1 s until it succeeds.
fe_wait() {
	local timeout=$1 end
	shift
	end=$(($(date +%s%N) + timeout * 1000000000))
	while ! "$@"; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# fe_vip_ok TARGET: one request to TARGET through the VIP answers.
fe_vip_ok() {
	local out
	out=$(fe_loadgen --target "$1" --close --connections 1 --concurrency 1 --timeout 1 2>/dev/null)
	[[ "$out" == *'"ok": 1'* ]]
}

# --- manifests ------------------------------------------------------------

# fe_manifest NAME VIP PREDSPEC... [-- manifests.py options]: writes (or
# replaces, atomically) a SeldonDeployment and its EndpointSlices in the
# config dir. PREDSPEC: name:weight:addr[@state],addr... (see manifests.py).
# FE_STYLE=truncate rewrites in place instead.
fe_manifest() {
	local name=$1 vip=$2 args=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args+=(--predictor "$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	"$FE_PY" "$FE_BIN/manifests.py" write --dir "$FE_CONF" --state-dir "$FE_SPECS" \
		--name "$name" --vip "$vip" --style "${FE_STYLE:-atomic}" "${args[@]}" "$@" ||
		fe_fail "manifests.py write $name failed"
	fe_standin_apply
}

fe_manifest_delete() {
	"$FE_PY" "$FE_BIN/manifests.py" delete --dir "$FE_CONF" --state-dir "$FE_SPECS" --name "$1"
	fe_standin_apply
}

# The iptables stand-in: DNAT rules with the specs' weights; conntrack keeps
# established connections where they are, like ferry's flow table.
fe_standin_apply() {
	[ "$FE_LB" = iptables ] || return 0
	[ -n "${FE_STANDIN_ON:-}" ] || return 0
	"$FE_PY" "$FE_BIN/manifests.py" iptables --state-dir "$FE_SPECS" --family 4 |
		fe_ns "$FE_NODE" iptables-restore || fe_fail "iptables-restore failed"
	"$FE_PY" "$FE_BIN/manifests.py" iptables --state-dir "$FE_SPECS" --family 6 |
		fe_ns "$FE_NODE" ip6tables-restore || fe_fail "ip6tables-restore failed"
}

# --- ferryd ----------------------------------------------------------------

# fe_ferryd_start [ferryd args...]: starts ferryd in the node namespace in the
# background (log: $FE_RUN/ferryd.log) with the scenario's config dir, ifaces
# and pin path, and waits until its pins exist. nsenter, not `ip netns exec`:
# the latter remounts /sys and would hide the host's bpffs.
fe_ferryd_start() {
	if [ "$FE_LB" = iptables ]; then
		FE_STANDIN_ON=1
		fe_standin_apply
		return 0
	fi
	# shellcheck disable=SC2046
	nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryd" --config-dir "$FE_CONF" \
		--iface "$FE_IF_NODE_CLIENT" $(fe_reply_iface_args) --pin-path "$FE_PIN" \
		--metrics-addr "$FE_METRICS" --log-level "${FE_LOG_LEVEL:-info}" "$@" \
		>>"$FE_RUN/ferryd.log" 2>&1 &
	FERRYD_PID=$!
	FE_PIDS+=($!)
	fe_log "ferryd started (pid $FERRYD_PID)"
	if ! fe_wait 10 fe_ferryd_pinned; then
		kill -0 "$FERRYD_PID" 2>/dev/null || fe_fail "ferryd exited at start"
		fe_fail "ferryd made no pins under $FE_PIN within 10 s"
	fi
	# Pins of an earlier ferryd are there at once; ferryd serves /metrics only
	# after its first sync, so that is when it is ready (for edits and signals).
	if ! fe_wait 20 fe_ferryd_serving; then
		kill -0 "$FERRYD_PID" 2>/dev/null || fe_fail "ferryd exited at start"
		fe_fail "ferryd does not serve http://$FE_METRICS/metrics within 20 s of its start"
	fi
}

fe_ferryd_serving() {
	kill -0 "$FERRYD_PID" 2>/dev/null || return 1
	fe_metrics >/dev/null 2>&1
}

fe_ferryd_pinned() {
	kill -0 "$FERRYD_PID" 2>/dev/null || return 1
	[ -d "$FE_PIN" ] && [ -n "$(ls -A "$FE_PIN" 2>/dev/null)" ]
}

# fe_ferryd_once [ferryd args...]: ferryd --once in the foreground; returns
# its exit code. The data plane stays attached.
fe_ferryd_once() {
	if [ "$FE_LB" = iptables ]; then
		FE_STANDIN_ON=1
		fe_standin_apply
		return 0
	fi
	# FE_WRAP: a command to run ferryd under, e.g. /usr/bin/time -v -o FILE.
	# shellcheck disable=SC2046,SC2086
	nsenter --net="/run/netns/$FE_NODE" ${FE_WRAP:-} "$FERRY_BUILD/ferryd" --config-dir "$FE_CONF" \
		--iface "$FE_IF_NODE_CLIENT" $(fe_reply_iface_args) --pin-path "$FE_PIN" \
		--log-level "${FE_LOG_LEVEL:-info}" --once "$@" >>"$FE_RUN/ferryd.log" 2>&1
}

# fe_ferryd_stop [TERM|KILL]: stops ferryd and waits for it; its exit status
# is left in FE_FERRYD_RC.
fe_ferryd_stop() {
	local sig=${1:-TERM}
	[ -n "$FERRYD_PID" ] || return 0
	[ "$FE_LB" = iptables ] && return 0
	kill -"$sig" "$FERRYD_PID" 2>/dev/null
	if ! fe_wait 10 fe_not_running "$FERRYD_PID"; then
		fe_log "ferryd ignored SIG$sig for 10 s"
		return 1
	fi
	wait "$FERRYD_PID" 2>/dev/null
	FE_FERRYD_RC=$? # 128 + N: ferryd died of signal N instead of handling it
	fe_log "ferryd stopped with SIG$sig (exit $FE_FERRYD_RC)"
	FERRYD_PID=""
}

fe_not_running() { ! kill -0 "$1" 2>/dev/null; }

# fe_ferryd_hup: SIGHUP (full resync).
fe_ferryd_hup() { [ -n "$FERRYD_PID" ] && kill -HUP "$FERRYD_PID"; }

# fe_metrics: ferryd's /metrics text on stdout.
fe_metrics() {
	fe_ns "$FE_NODE" curl -sf --max-time 2 "http://$FE_METRICS/metrics"
}

# fe_metric NAME [LABEL=VALUE...]: the sum of ferryd's samples of metric NAME
# whose labels match; prints 0 when there is none; fails when /metrics does not answer.
fe_metric() {
	local name=$1 text
	shift
	text=$(fe_metrics) || return 1
	"$FE_PY" -c '
import re, sys
name, want = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
tot = 0.0
for ln in sys.stdin:
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", ln)
    if not m or m.group(1) != name:
        continue
    lbl = dict(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\]|\\.)*)\"", m.group(2) or ""))
    if all(lbl.get(k) == v for k, v in want.items()):
        tot += float(m.group(3))
print("%d" % tot if tot == int(tot) else tot)
' "$name" "$@" <<<"$text"
}

# fe_status_files_rm PIN: ferryd's files for PIN in /run/ferry (the status
# file, the canary state file and command directory), which ferryctl reset
# removes too; by hand for a run whose reset did not happen.
fe_status_files_rm() {
	local base
	base="/run/ferry/$(echo "$1" | tr / _)"
	rm -rf "$base.json" "$base.canary.json" "$base.canary-ctl"
}

# Removes ferry's data plane from the node: ferryctl reset when there is one,
# by hand otherwise (XDP off, clsact gone, pins removed, ferryd's files in
# /run/ferry removed).
fe_ferry_reset() {
	local ifs=() i log=/dev/null
	[ -n "${FE_RUN:-}" ] && log="$FE_RUN/ferryctl.log"
	if [ -x "$FERRY_BUILD/ferryctl" ] && [ -d "$FE_PIN" ] && [ -e "/run/netns/$FE_NODE" ]; then
		nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" reset --yes \
			--pin-path "$FE_PIN" >>"$log" 2>&1
	fi
	if [ -e "/run/netns/$FE_NODE" ]; then
		ifs=("$FE_IF_NODE_CLIENT")
		for ((i = 1; i <= FE_NBACKENDS; i++)); do ifs+=("$(fe_node_if "$i")"); done
		for i in "${ifs[@]}"; do
			ip -n "$FE_NODE" link set dev "$i" xdp off 2>/dev/null
			fe_ns "$FE_NODE" tc qdisc del dev "$i" clsact 2>/dev/null
		done
	fi
	rm -rf "$FE_PIN"
	fe_status_files_rm "$FE_PIN"
}

fe_cleanup_quiet() {
	local ns pid
	# Processes we started, by id, then whatever still runs inside our own namespaces.
	for pid in "${FE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$FE_PFX-"); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
	done
	sleep 0.2
	for pid in "${FE_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$FE_PFX-"); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	fe_ferry_reset
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$FE_PFX-"); do
		ip netns del "$ns" 2>/dev/null
	done
	# Veths are gone with their namespaces; a half-made one may be left in ours.
	for i in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 |
		grep "^fe$FE_TAG-"); do
		ip link del "$i" 2>/dev/null
	done
}

fe_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -z "$FE_RESULT" ]; then
		echo "FAIL e2e/$FE_SCN: script stopped before a verdict (exit $rc)"
		fe_dump_logs
		rc=1
	fi
	fe_cleanup_quiet
	if [ -n "${FE_RUN:-}" ]; then
		if [ "${FE_KEEP:-0}" = 1 ]; then
			fe_log "kept $FE_RUN"
		else
			rm -rf "$FE_RUN"
		fi
	fi
	exit "$rc"
}

# fe_second_pin: FE_PIN2 ($FE_PIN-2), the pin root of a second node's ferryd,
# removed now (a run killed with -9 may have left it) and again on exit
# (ferryctl reset, then the directory), before fe_cleanup.
fe_second_pin() {
	FE_PIN2="$FE_PIN-2"
	trap fe_second_pin_cleanup EXIT
	rm -rf "$FE_PIN2"
}

fe_second_pin_cleanup() {
	local rc=$?
	if [ -d "$FE_PIN2" ]; then
		"$FERRY_BUILD/ferryctl" reset --yes --pin-path "$FE_PIN2" >/dev/null 2>&1
		rm -rf "$FE_PIN2"
	fi
	fe_status_files_rm "$FE_PIN2"
	(exit "$rc")
	fe_cleanup
}
