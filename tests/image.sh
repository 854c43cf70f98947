#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# image: ferry's container image, built (make image) and run with exactly the
# privileges deploy/kubernetes/daemonset.yaml declares, translated to run
# flags by tests/image/runflags.py, in the node namespace of the end-to-end
# topology (vmtests/lib/topo.sh). Checks, one line each:
#
#   image/k8s_rules_self_test  the API server rules catch what they should
#   image/daemonset_valid      the DaemonSet passes them
#   image/build                make image (debootstrap bases, no registry)
#   image/start                ferryd starts, attaches, pins into the host's bpffs
#   image/read_only            the root filesystem and /run are not writable;
#                              ferryd's status file lands in the emptyDir
#   image/http                 /healthz, /readyz and /metrics answer
#   image/split_90_10          a 90/10 split through the VIP (3 sigma)
#   image/ferryctl             ferryctl inside the image reads the pins
#   image/replace              container stopped, a new one started, under
#                              traffic: 0 failed requests
#   image/least_privilege_CAP  without CAP (BPF, NET_ADMIN, PERFMON) ferryd
#                              refuses to start and names it
#
# Needs root and runs containers with podman (docker cannot join a named
# network namespace); prints one "SKIP image: REASON" when it cannot.
# Root resources (netns, pins): run under flock /tmp/ferry-root.lock.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
ds="$top/deploy/kubernetes/daemonset.yaml"
image=$(sed -n 's/^# IMAGE: //p' "$top/deploy/Dockerfile")
failures=0

pass() { echo "PASS image/$1${2:+ ($2)}"; }
fail() {
	echo "FAIL image/$1: $2"
	failures=$((failures + 1))
}

# --- the API server's rules, no container needed -------------------------
if out=$("$py" "$top/tests/image/k8s_rules.py" --self-test 2>&1); then
	pass k8s_rules_self_test
else
	fail k8s_rules_self_test "$(echo "$out" | paste -sd ';')"
fi
if out=$("$py" "$top/tests/image/k8s_rules.py" "$ds" 2>&1); then
	pass daemonset_valid
else
	fail daemonset_valid "$(echo "$out" | paste -sd ';')"
fi

skip() {
	echo "SKIP image: $*"
	echo "*** SKIPPED image: $* ***" >&2
	exit "$((failures > 0))"
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, bpffs, podman storage)"
command -v podman >/dev/null || skip "podman is not installed (make deps); docker cannot join a named network namespace"
engine=$(FERRY_ENGINE=podman "$top/deploy/image/engine.sh" 2>&1) || skip "$engine"
# A host where podman cannot start any container at all (no runtime, no
# overlay, no cgroups) skips; the base image is the one thing always there
# once the build has made it, so the check runs after the build.

# --- build ------------------------------------------------------------------
t0=$(date +%s)
if ! out=$(FERRY_ENGINE=podman "$top/deploy/image/build.sh" "${FERRY_BUILD:-build}" 2>&1); then
	echo "$out" >&2
	fail build "make image failed (see above)"
	exit 1
fi
echo "$out" >&2
if ! $engine image exists "$image"; then
	fail build "no image $image after the build"
	exit 1
fi
size=$($engine image inspect --format '{{.Size}}' "$image")
pass build "$image, $((size / 1000000)) MB, $(($(date +%s) - t0)) s"
ulimits=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=4096:4096")
if ! out=$($engine run --rm --network none "${ulimits[@]}" --entrypoint /bin/true "$image" 2>&1); then
	skip "podman cannot run a container here: $(echo "$out" | tail -n 1)"
fi

# --- the end-to-end topology ---------------------------------------------------
# shellcheck source=SCRIPTDIR/../vmtests/lib/topo.sh
. "$top/vmtests/lib/topo.sh"
# topo.sh's verdict helpers end a scenario with one e2e/ line; here a setup
# failure ends the suite with an image/ line instead.
stage=setup
fe_fail() {
	FE_RESULT=FAIL
	fail "$stage" "$*"
	fe_dump_logs
	exit 1
}
fe_skip() {
	FE_RESULT=SKIP
	skip "$*"
}
cname=ferry-image-test
containers=()
ctr_cleanup() {
	local c
	for c in "${containers[@]}"; do
		$engine rm -f -t 5 "$c" >/dev/null 2>&1
	done
}
image_cleanup() {
	local rc=$?
	ctr_cleanup
	[ -n "$FE_RESULT" ] || FE_RESULT=ended
	fe_cleanup_quiet
	[ -n "${FE_RUN:-}" ] && [ "${FE_KEEP:-0}" != 1 ] && rm -rf "$FE_RUN"
	exit "$rc"
}
# A container of a killed earlier run still holds the node namespace.
$engine rm -f -t 1 "$cname" "$cname-2" "$cname-lp" >/dev/null 2>&1
fe_init image img
trap image_cleanup EXIT
fe_require_root

vip=198.18.100.10:8000
m="$(fe_backend_ip 1),$(fe_backend_ip 2)"
c3="$(fe_backend_ip 3)"
fe_std_backends
fe_manifest iris "$vip" "main:90:$m" "canary:10:$c3"

# run_flags POD_DIR [runflags.py options]: the DaemonSet's privileges as flags.
run_flags() {
	local pod=$1
	shift
	"$py" "$top/tests/image/runflags.py" "$ds" --netns "/run/netns/$FE_NODE" \
		--emptydir-root "$pod" "$@"
}
# The test's own container args: a config directory (mounted like a
# ConfigMap) instead of --kubernetes, since no API server runs here.
ferryd_args() {
	echo --config-dir /etc/ferry/config --iface "$FE_IF_NODE_CLIENT"
	fe_reply_iface_args
	echo --pin-path "$FE_PIN" --metrics-addr "$FE_METRICS"
}

# ctr_start NAME: starts ferryd's container (a new "pod": its own emptyDir).
ctr_start() {
	local name=$1 text flags
	mkdir -p "$FE_RUN/$name"
	text=$(run_flags "$FE_RUN/$name") || fe_fail "runflags.py failed"
	mapfile -t flags <<<"$text"
	# The image name is the last line; the config mount goes before it.
	# shellcheck disable=SC2046
	$engine run -d --name "$name" "${ulimits[@]}" --stop-timeout 30 \
		--volume "$FE_CONF:/etc/ferry/config:ro" "${flags[@]}" $(ferryd_args) \
		>"$FE_RUN/$name.id" 2>"$FE_RUN/$name.err" ||
		fe_fail "podman run failed: $(tail -n 3 "$FE_RUN/$name.err")"
	containers+=("$name")
	fe_log "container $name started"
}
ctr_running() { [ "$($engine inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }
ctr_logs() { $engine logs "$1" 2>&1 | tail -n 30 | sed 's/^/  ferryd: /' >&2; }
http_ok() { fe_ns "$FE_NODE" curl -sf --max-time 2 -o /dev/null "http://$FE_METRICS$1"; }
# ctr_ready NAME: running, pinned, ready (first sync applied).
ctr_ready() {
	local name=$1
	if ! fe_wait 30 http_ok /readyz; then
		ctr_logs "$name"
		ctr_running "$name" || fe_fail "ferryd's container $name exited at start"
		fe_fail "ferryd in $name not ready (/readyz) within 30 s"
	fi
}

# --- start, attach, pins ---------------------------------------------------------
stage=start
ctr_start "$cname"
ctr_ready "$cname"
pins=$(ls "$FE_PIN" 2>/dev/null | wc -l)
[ "$pins" -gt 0 ] || fe_fail "no pins under $FE_PIN on the host"
# The forward program sits at XDP or, on a veth whose peer runs no XDP, at TC
# ingress only (ferryd's default: docs/datapath.md); either way it is attached.
ifx=$(ip netns exec "$FE_NODE" cat "/sys/class/net/$FE_IF_NODE_CLIENT/ifindex")
if ip -n "$FE_NODE" -d link show dev "$FE_IF_NODE_CLIENT" | grep -q 'prog/xdp'; then
	hook=XDP
elif [ -e "$FE_PIN/links/tcx-$ifx-ferry_tc_fwd" ] ||
	[ -n "$(ip netns exec "$FE_NODE" tc filter show dev "$FE_IF_NODE_CLIENT" ingress)" ]; then
	hook="TC ingress"
else
	fe_fail "no forward program (XDP or TC) on $FE_IF_NODE_CLIENT"
fi
pass start "$pins pins under $FE_PIN on the host's bpffs, $hook on $FE_IF_NODE_CLIENT"

# --- read-only root, status file on the emptyDir -------------------------------------
stage=read_only
problems=()
for p in /run/probe /tmp/probe /probe; do
	$engine exec "$cname" sh -c ": >$p" 2>/dev/null && problems+=("$p is writable")
done
status=$(ls "$FE_RUN/$cname/run/"*.json 2>/dev/null | head -n 1)
if [ -z "$status" ]; then
	problems+=("no status file in the emptyDir mounted at /run/ferry")
elif ! "$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(d["services"] != 1)' "$status"; then
	problems+=("status file $status does not say 1 service")
fi
if [ ${#problems[@]} -eq 0 ]; then
	pass read_only "root and /run read-only, status in the emptyDir"
else
	fail read_only "$(printf '%s; ' "${problems[@]}")"
fi

# --- HTTP endpoints -------------------------------------------------------------------
stage=http
problems=()
http_ok /healthz || problems+=("/healthz does not answer 200")
http_ok /readyz || problems+=("/readyz does not answer 200")
n=$(fe_metrics 2>/dev/null | grep -c '^ferry_')
[ "$n" -gt 0 ] || problems+=("/metrics has no ferry_ sample")
if [ ${#problems[@]} -eq 0 ]; then
	pass http "/healthz, /readyz 200; /metrics $n ferry_ samples"
else
	fail http "$(printf '%s; ' "${problems[@]}")"
fi

# --- 90/10 split through the VIP ---------------------------------------------------------
stage=split_90_10
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
out="$FE_RUN/split.json"
fe_loadgen --target "$vip" --close --connections 2400 --concurrency 32 --timeout 3 >"$out" ||
	fe_fail "load client failed"
if [ "$(fe_json "$out" 'd["error_total"]')" -ne 0 ]; then
	fail split_90_10 "failed requests: $(fe_json "$out" 'd["errors"]')"
elif share=$(fe_share_check "$out" canary 0.10); then
	pass split_90_10 "$share"
else
	fail split_90_10 "$share"
fi

# --- ferryctl inside the image ---------------------------------------------------------------
stage=ferryctl
st=$($engine exec "$cname" ferryctl status --pin-path "$FE_PIN" 2>&1)
sv=$($engine exec "$cname" ferryctl services --pin-path "$FE_PIN" 2>&1)
echo "$st" "$sv" | sed 's/^/  ferryctl: /' >&2
if [[ "$sv" == *198.18.100.10* && "$sv" == *canary* && "$sv" == *main* && "$st" == *"$FE_IF_NODE_CLIENT"* ]]; then
	pass ferryctl "status lists $FE_IF_NODE_CLIENT, services lists the VIP and both predictors"
else
	fail ferryctl "ferryctl status/services inside the image do not show the VIP, predictors and interface"
fi

# --- replace the container under traffic (a DaemonSet rolling update) ------------------------------
stage=replace
ka="$FE_RUN/keepalive.json"
nc="$FE_RUN/newconns.json"
fe_loadgen_bg "$ka" --target "$vip" --keepalive --connections 16 --rate 200
ka_pid=$FE_LAST_PID
fe_loadgen_bg "$nc" --target "$vip" --close --rate 200 --concurrency 16 --timeout 2
nc_pid=$FE_LAST_PID
sleep 1
problems=()
$engine stop -t 30 "$cname" >/dev/null 2>&1 || problems+=("podman stop $cname failed")
rc=$($engine inspect --format '{{.State.ExitCode}}' "$cname" 2>/dev/null)
[ "$rc" = 0 ] || problems+=("ferryd exited $rc on SIGTERM")
$engine rm "$cname" >/dev/null 2>&1
sleep 1 # traffic flows with no ferryd at all
ctr_start "$cname-2"
ctr_ready "$cname-2"
sleep 1
fe_loadgen_stop "$ka_pid"
fe_loadgen_stop "$nc_pid"
for f in "$ka" "$nc"; do
	if [ ! -s "$f" ]; then
		problems+=("load client printed no summary ($(basename "$f"))")
	elif [ "$(fe_json "$f" 'd["error_total"]')" -ne 0 ]; then
		problems+=("$(basename "$f" .json): failed requests $(fe_json "$f" 'd["errors"]')")
	fi
done
if [ ${#problems[@]} -eq 0 ]; then
	pass replace "$(fe_json "$ka" 'd["ok"]') keep-alive + $(fe_json "$nc" 'd["ok"]') new-connection requests, 0 failed"
else
	fail replace "$(printf '%s; ' "${problems[@]}")"
fi

# --- least privilege ------------------------------------------------------------------------------------
for cap in BPF NET_ADMIN PERFMON; do
	stage=least_privilege_$cap
	mkdir -p "$FE_RUN/lp-$cap"
	text=$(run_flags "$FE_RUN/lp-$cap" --drop-cap "$cap") || fe_fail "runflags.py failed"
	mapfile -t flags <<<"$text"
	# Its own metrics address: the running ferryd holds the usual one.
	# shellcheck disable=SC2046
	out=$(timeout 60 $engine run --rm --name "$cname-lp" "${ulimits[@]}" \
		--volume "$FE_CONF:/etc/ferry/config:ro" "${flags[@]}" $(ferryd_args | sed 's/9464/9465/') 2>&1)
	rc=$?
	echo "$out" | tail -n 3 | sed "s/^/  without $cap: /" >&2
	if [ "$rc" -eq 0 ]; then
		fail "least_privilege_$cap" "ferryd ran without CAP_$cap"
	elif ! grep -q "missing capabilities: CAP_$cap " <<<"$out"; then
		fail "least_privilege_$cap" "exit $rc, but the error does not name CAP_$cap: $(echo "$out" | tail -n 1)"
	else
		pass "least_privilege_$cap" "exit $rc: $(grep -o "missing capabilities: CAP_$cap [^;]*" <<<"$out")"
	fi
done
# The one that runs still forwards: a failed start touched nothing.
stage=least_privilege
fe_vip_ok "$vip" || fail least_privilege "the VIP stopped answering after the failed starts"

exit "$((failures > 0))"
