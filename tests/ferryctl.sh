#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# ferryctl against a running ferry: a client, a node running ferryd and three
# model servers (predictor main on backends 1 and 2, canary on backend 3), all
# in network namespaces built with vmtests/lib/topo.sh. Every ferryctl command
# is run in plain and JSON form and its fields are checked against what the
# topology really is; the emergency controls (weights, drain) are checked with
# real HTTP connections; every pinned map is dumped with bpftool and its BTF
# field names checked; `ferryctl reset --yes` must leave nothing behind.
#
# One line per test on stdout: PASS ferryctl/NAME, FAIL ferryctl/NAME: why,
# SKIP ferryctl/NAME: why. Details on stderr.
#
# Names: namespaces fo-test-*, interfaces foct-*, pins /sys/fs/bpf/ferry-fo-test.
# Env: FERRY_BUILD (default build), FO_KEEP=1 keeps the run directory
# /tmp/fo-test.* (ferryd.log, manifests, and every command's output in out/,
# NAME.cmd holding the command line), FO_ONLY="a b" runs only those tests
# (setup always runs; reset always runs last). Takes about 3 minutes.
# shellcheck disable=SC2034 # FE_* names are read by topo.sh's functions
set -uo pipefail

FO_TOP=$(cd "$(dirname "$0")/.." && pwd)
export FO_TOP
ABI=$(sed -n 's/^#define FERRY_ABI_VERSION \([0-9]*\).*/\1/p' "$FO_TOP/maps/ferry_maps.h")
FERRY_BUILD=${FERRY_BUILD:-build}
case "$FERRY_BUILD" in /*) ;; *) FERRY_BUILD="$FO_TOP/$FERRY_BUILD" ;; esac
CTL="$FERRY_BUILD/ferryctl"
PY=${PYTHON:-python3}
FO_VERDICTS=0
FO_FAILED=0

fo_verdict() { # KIND NAME [why]
	echo "$1 ferryctl/$2${3:+: $3}"
	FO_VERDICTS=$((FO_VERDICTS + 1))
	[ "$1" = FAIL ] && FO_FAILED=1
	return 0
}

# Before the topology exists: a SKIP for every test, loudly.
FO_TESTS=(help status services flows flows_flush latency top config_errors trace drain weights_override
	ferryd_down sigterm_clean weights_restart sighup override_vs_edit weights_rollback
	weights_clear weights_fast_vs_full exit_codes bpftool_maps reset)
fo_skip_all() {
	local t
	echo "*** SKIPPED ferryctl suite: $* ***" >&2
	for t in "${FO_TESTS[@]}"; do fo_verdict SKIP "$t" "$*"; done
	exit 0
}

[ "$(id -u)" -eq 0 ] || fo_skip_all "needs root (network namespaces, BPF); run as root"
for b in "$CTL" "$FERRY_BUILD/ferryd"; do
	[ -x "$b" ] || fo_skip_all "$b not built (make all, or set FERRY_BUILD)"
done
for c in ip tc nsenter bpftool "$PY"; do
	command -v "$c" >/dev/null || fo_skip_all "needs $c"
done
[ -r "$FO_TOP/vmtests/lib/topo.sh" ] || fo_skip_all "vmtests/lib/topo.sh missing"

# One run at a time: a second run's leftover sweep would tear down the first
# one's namespaces and pins (same names). Wait for it rather than collide.
FO_LOCK=/run/lock/ferry-fo-test.lock
exec 9>"$FO_LOCK" || fo_skip_all "cannot open $FO_LOCK"
if ! flock -n 9; then
	echo "waiting for another tests/ferryctl.sh run to finish (lock $FO_LOCK)" >&2
	flock -w 600 9 || fo_skip_all "another tests/ferryctl.sh run held $FO_LOCK for 600 s"
fi

# shellcheck source=../vmtests/lib/topo.sh
. "$FO_TOP/vmtests/lib/topo.sh"

# --- topo.sh with this suite's names -------------------------------------
# topo.sh names things fe-*; this suite owns the fo prefix, so the naming
# helpers are redefined here (topo.sh itself is shared and not edited).
FE_SCN=ferryctl
FE_TAG=fo # only used by topo's leftover-veth sweep: "^fefo-" matches nothing
FE_PFX=fo-test
FE_CLIENT="$FE_PFX-client"
FE_NODE="$FE_PFX-node"
FE_PIN=/sys/fs/bpf/ferry-fo-test
FE_IF_CLIENT=foct-c
FE_IF_NODE_CLIENT=foct-n0
FE_METRICS="127.0.0.1:9464"
fe_backend_if() { echo "foct-b$1"; }
fe_node_if() { echo "foct-n$1"; }

fo_status_file() { echo "/run/ferry/$(echo "$FE_PIN" | tr / _).json"; }

# topo.sh's helpers call fe_fail/fe_skip on setup errors: report them as ours.
fe_fail() {
	fo_verdict FAIL setup "$*"
	fe_dump_logs
	exit 1
}
fe_skip() { fo_skip_all "$*"; }

fo_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	fe_cleanup_quiet
	for i in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^foct-'); do
		ip link del "$i" 2>/dev/null
	done
	rm -f "$(fo_status_file)"
	if [ -n "${FE_RUN:-}" ]; then
		if [ "${FO_KEEP:-0}" = 1 ]; then
			fe_log "kept $FE_RUN"
		else
			rm -rf "$FE_RUN"
		fi
	fi
	if [ "$FO_VERDICTS" -eq 0 ]; then
		echo "FAIL ferryctl/suite: stopped before any verdict (exit $rc)"
		rc=1
	fi
	[ "$FO_FAILED" -eq 1 ] && rc=1
	exit "$rc"
}
trap fo_cleanup EXIT
trap 'echo "FAIL ferryctl/suite: interrupted by a signal"; FO_FAILED=1; exit 1' INT TERM

# A run killed with -9 may have left its pieces.
fe_cleanup_quiet
rm -f "$(fo_status_file)"
FE_RUN=$(mktemp -d /tmp/fo-test.XXXXXX)
FE_CONF="$FE_RUN/conf"
FE_SPECS="$FE_RUN/specs"
OUT="$FE_RUN/out"
mkdir -p "$FE_CONF" "$FE_SPECS" "$OUT"

# --- helpers ----------------------------------------------------------------

VIP=198.18.100.10:8000
B1=$(fe_backend_ip 1) B2=$(fe_backend_ip 2) B3=$(fe_backend_ip 3)

# fctl ARGS...: ferryctl in the node namespace (interface names resolve there;
# nsenter keeps the host's bpffs visible).
# With FO_CTL_TIMEOUT=SECONDS set, a ferryctl that runs longer is killed (exit 124): for
# command lines that once hung.
fctl() {
	if [ -n "${FO_CTL_TIMEOUT:-}" ]; then
		timeout "$FO_CTL_TIMEOUT" nsenter --net="/run/netns/$FE_NODE" "$CTL" --pin-path "$FE_PIN" "$@"
	else
		nsenter --net="/run/netns/$FE_NODE" "$CTL" --pin-path "$FE_PIN" "$@"
	fi
}

# run NAME ARGS...: ferryctl with stdout to $OUT/NAME, stderr to $OUT/NAME.err;
# returns ferryctl's exit code. The command line is kept in $OUT/NAME.cmd.
run() {
	local name=$1 rc
	shift
	echo "ferryctl $*" >"$OUT/$name.cmd"
	fctl "$@" >"$OUT/$name" 2>"$OUT/$name.err"
	rc=$?
	echo "$rc" >"$OUT/$name.rc"
	if [ -s "$OUT/$name.err" ]; then
		sed "s/^/  [$name stderr] /" "$OUT/$name.err" >&2
	fi
	return $rc
}

# jcheck FILE EXPR...: every Python EXPR (d = the JSON document; for JSON
# lines, d = the list of documents) must hold; the first that does not is
# printed with the document.
jcheck() {
	"$PY" - "$@" <<'EOF'
import json, sys
path = sys.argv[1]
text = open(path).read()
try:
    d = json.loads(text)
except ValueError:
    try:
        d = [json.loads(l) for l in text.splitlines() if l.strip()]
    except ValueError as e:
        print("  %s: not JSON (%s): %r" % (path, e, text[:400]), file=sys.stderr)
        sys.exit(1)
def svc(vip):
    m = [s for s in d if s.get("vip") == vip]
    return m[0] if m else {}
def near(x, want):
    # Effective weights are table slots over table size: 13105/16381 = 80.0012%.
    return x is not None and abs(x - want) < 0.05
def pred(s, name):
    m = [p for p in s.get("predictors", []) if p.get("name") == name]
    return m[0] if m else {}
for e in sys.argv[2:]:
    try:
        ok = eval(e)
    except Exception as x:
        ok = False
        print("  check raised %r: %s" % (x, e), file=sys.stderr)
    if not ok:
        print("  check failed: %s\n  in %s:\n%s" % (e, path, text[:3000]), file=sys.stderr)
        sys.exit(1)
EOF
}

# expect_rc WANT NAME ARGS...: runs ferryctl, checks the exit code.
expect_rc() {
	local want=$1 name=$2 rc
	shift 2
	run "$name" "$@"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "  'ferryctl $*' exited $rc, expected $want; stdout: $(head -c 300 "$OUT/$name")" >&2
		return 1
	fi
}

# burst N OUT: N new connections through the VIP, one request each.
burst() {
	fe_loadgen --target "$VIP" --close --connections "$1" --concurrency 16 --timeout 2 >"$2" \
		2>>"$FE_RUN/loadgen.log" || {
		echo "  load client failed (see $FE_RUN/loadgen.log)" >&2
		return 1
	}
}

# burst_facts OUT: one line for a failure message: the load's errors by kind
# and backends, and the node's non-zero drop, data-path and rebalance counters, so
# a failure in CI says which of client, kernel or ferryd lost the requests.
burst_facts() {
	local load node
	load=$("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("errors %s, backends %s" % (d.get("errors"), d.get("backends")))' "$1" 2>/dev/null)
	node=$(fe_metrics 2>/dev/null | grep -E '^ferry_(drops|datapath_events|rebalance_connections)_total' |
		awk '$2 != 0 { sub(/^ferry_/, ""); printf "%s ", $0 }')
	echo "${load:-no load JSON}; node: ${node:-no counters}"
}

# only OUT PRED: every request answered, all by PRED.
only() {
	jcheck "$1" 'd["error_total"] == 0' 'd["ok"] > 0' "set(d['predictors']) == {'$2'}"
}

grep_out() { # NAME REGEX
	grep -Eq "$2" "$OUT/$1" || {
		echo "  output of '$(cat "$OUT/$1.cmd")' lacks /$2/:" >&2
		sed 's/^/    /' "$OUT/$1" >&2
		return 1
	}
}

# ferryd_alive_is PID: ferryctl status says ferryd PID is alive.
ferryd_alive_is() {
	fctl -j status 2>/dev/null >"$FE_RUN/alive.json" &&
		jcheck "$FE_RUN/alive.json" "d['ferryd']['alive'] and d['ferryd']['pid'] == $1" 2>/dev/null
}

t() { # NAME FUNCTION
	local name=$1 rc
	if [ -n "${FO_ONLY:-}" ] && [[ " $FO_ONLY " != *" $name "* ]] && [ "$name" != reset ]; then
		return 0
	fi
	echo "== ferryctl/$name" >&2
	"$2"
	rc=$?
	case $rc in
	0) fo_verdict PASS "$name" ;;
	77) fo_verdict SKIP "$name" "${FO_SKIP_WHY:-skipped}" ;;
	*) fo_verdict FAIL "$name" "${FO_WHY:-see stderr}" ;;
	esac
	FO_WHY="" FO_SKIP_WHY=""
}
why() {
	FO_WHY="$*"
	echo "  -> $*" >&2
	return 1
}

# --- setup --------------------------------------------------------------

fe_std_backends
fe_manifest iris "$VIP" "main:80:$B1,$B2" "canary:20:$B3"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$VIP" || fe_fail "VIP $VIP does not answer within 10 s"
fe_wait 10 ferryd_alive_is "$FERRYD_PID" || fe_fail "ferryctl status never shows ferryd $FERRYD_PID alive"
burst 400 "$FE_RUN/warmup.json" || fe_fail "warm-up traffic failed"
jcheck "$FE_RUN/warmup.json" 'd["error_total"] == 0' || fe_fail "warm-up requests failed"

# Long-lived keep-alive connections (flows, trace flow-hit) and a trickle of
# new ones (trace new-flow), for the whole run.
HOLD_N=6
fe_loadgen_bg "$FE_RUN/hold.json" --target "$VIP" --hold "$HOLD_N" --hold-interval 0.2 \
	--ready-file "$FE_RUN/hold.ready"
HOLD_PID=$FE_LAST_PID
fe_loadgen_bg "$FE_RUN/trickle.json" --target "$VIP" --close --rate 20 --concurrency 4 --timeout 2
TRICKLE_PID=$FE_LAST_PID
fe_wait 10 test -e "$FE_RUN/hold.ready" || fe_fail "held connections not ready within 10 s"

# --- tests --------------------------------------------------------------

test_help() {
	local c bad=""
	expect_rc 0 help --help || return 1
	grep_out help '^Exit codes: 0 ok, 1 failed, 2 usage error, 3' || return 1
	for c in status services flows latency top weights canary drain undrain trace reset; do
		if ! run "help-$c" "$c" --help || ! grep -q '^Usage: ferryctl '"$c" "$OUT/help-$c"; then
			bad+=" $c(exit $(cat "$OUT/help-$c.rc"))"
		fi
	done
	[ -z "$bad" ] || why "'ferryctl COMMAND --help' does not print usage with exit 0 for:$bad"
}

test_status() {
	local i
	run status status || why "status exited $?" || return 1
	grep_out status '^ferryd: +alive \(pid '"$FERRYD_PID" || return 1
	grep_out status "ABI $ABI\\)" || return 1
	# A veth whose peer runs no XDP: the forward program goes to TC, and status says why.
	grep_out status "^  $FE_IF_NODE_CLIENT +tc-ingress\(forward\).*\(veth, peer runs no XDP" || return 1
	grep_out status "^  foct-n1 +.*tc-ingress\(reply\)" || return 1
	grep_out status '^config errors: 0' || return 1
	run status.json -j status || why "status -j exited $?" || return 1
	jcheck "$OUT/status.json" \
		"d['abi_version'] == $ABI" \
		"d['pin_path'] == '$FE_PIN'" \
		"d['ferryd']['alive'] is True and d['ferryd']['pid'] == $FERRYD_PID" \
		'0 <= d["ferryd"]["heartbeat_age_s"] < 5' \
		'd["generation"] >= 1' 'd["last_sync_unix"] > 1.6e9' \
		'd["services"] >= 1' \
		"{l['ifname'] for l in d['links']} == {'foct-n0', 'foct-n1', 'foct-n2', 'foct-n3'}" \
		"all(l['attached'] for l in d['links'])" \
		"[l for l in d['links'] if l['ifname'] == 'foct-n0'][0]['hooks'].startswith('tc-ingress(forward)')" \
		"[l for l in d['links'] if l['ifname'] == 'foct-n0'][0]['reason'].startswith('veth, peer runs no XDP')" \
		"all('tc-ingress(reply)' in l['hooks'] for l in d['links'] if l['ifname'] != 'foct-n0')" \
		"all('xdp(' not in l['hooks'] for l in d['links'])" \
		"{m['name'] for m in d['maps']} >= {'ferry_services', 'ferry_flows', 'ferry_backends', 'ferry_pred_meta'}" \
		"[m for m in d['maps'] if m['name'] == 'ferry_backends'][0]['entries'] == 3" \
		"[m for m in d['maps'] if m['name'] == 'ferry_flows'][0]['entries'] >= $HOLD_N" \
		'not d.get("config_errors")' || why "status -j fields wrong" || return 1
	# XDP metadata as ferryd found it: its start-up warning says when the kernel refuses it.
	local meta=True said=yes
	grep -q "refuses bpf_xdp_adjust_meta" "$FE_RUN/ferryd.log" && meta=False said=no
	jcheck "$OUT/status.json" "d['kernel']['xdp_meta'] is $meta" ||
		why "status -j kernel.xdp_meta is not $meta, as ferryd's log says" || return 1
	grep_out status "XDP metadata $said" || return 1
	# The flow clock as ferryd published it: its start-up line says when it measured the tick.
	local clock=False clock_said=bpf_ktime_get_coarse_ns
	grep -q "flow clock: jiffies" "$FE_RUN/ferryd.log" && clock=True clock_said=jiffies
	jcheck "$OUT/status.json" "d['kernel']['jiffies_clock'] is $clock" ||
		why "status -j kernel.jiffies_clock is not $clock, as ferryd's log says" || return 1
	grep_out status "flow clock $clock_said" || return 1
	# What status claims is what the kernel has: its map counts (read a batch at a time)
	# are bpftool's, and the attach points are ip's and tc's.
	local nsvc
	nsvc=$(bpftool -j map dump pinned "$FE_PIN/ferry_services" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
	jcheck "$OUT/status.json" "[m for m in d['maps'] if m['name'] == 'ferry_services'][0]['entries'] == $nsvc" ||
		why "status counts ferry_services otherwise than bpftool's $nsvc entries" || return 1
	! ip -n "$FE_NODE" link show dev foct-n0 | grep -q 'prog/xdp' || why "XDP on foct-n0 per ip link, status says TC" || return 1
	# Classic clsact filters show in 'tc filter'; tcx links (Linux 6.6+) do not, and
	# Debian 12's bpftool 7.1 predates them too: their pins under PIN/links name them.
	for i in 1 2 3; do
		local ifx
		ifx=$(ip netns exec "$FE_NODE" cat "/sys/class/net/foct-n$i/ifindex")
		[ -n "$(ip netns exec "$FE_NODE" tc filter show dev "foct-n$i" ingress)" ] ||
			bpftool -j link show pinned "$FE_PIN/links/tcx-$ifx-ferry_tc_reply_in" 2>/dev/null |
			grep -q '"prog_id"' || why "no TC ingress program on foct-n$i" || return 1
	done
	# The status file ferryd writes (config errors live there).
	[ -s "$(fo_status_file)" ] || why "no status file at $(fo_status_file)" || return 1
	"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$(fo_status_file)" ||
		why "status file $(fo_status_file) is not JSON"
}

test_services() {
	run services services || why "services exited $?" || return 1
	# service=-: a literal VIP (service=NS/NAME for ferry.io/vip: service/NAME, vmtests service_vip).
	grep_out services "^$VIP +default/iris +service=- +\(affinity" || return 1
	grep_out services '^  main +configured +80\.00% +effective +80\.00%' || return 1
	grep_out services '^  canary +configured +20\.00% +effective +20\.00%' || return 1
	grep_out services "^    $B1:9000 +active" || return 1
	run services.json -j services || why "services -j exited $?" || return 1
	jcheck "$OUT/services.json" \
		"len(d) == 1 and svc('$VIP')['deployment'] == 'default/iris'" \
		"'service' in svc('$VIP') and svc('$VIP')['service'] is None" \
		"svc('$VIP')['table_size'] >= 7" \
		"[p['name'] for p in svc('$VIP')['predictors']] == ['main', 'canary'] or [p['name'] for p in svc('$VIP')['predictors']] == ['canary', 'main']" \
		"pred(svc('$VIP'), 'main')['weight_configured'] == 80 and near(pred(svc('$VIP'), 'main')['weight_effective'], 80)" \
		"pred(svc('$VIP'), 'canary')['weight_configured'] == 20 and near(pred(svc('$VIP'), 'canary')['weight_effective'], 20)" \
		"pred(svc('$VIP'), 'main')['weight_override'] is None" \
		"sorted(b['address'] for b in pred(svc('$VIP'), 'main')['backends']) == ['$B1:9000', '$B2:9000']" \
		"[b['address'] for b in pred(svc('$VIP'), 'canary')['backends']] == ['$B3:9000']" \
		"all(b['state'] == 'active' for p in svc('$VIP')['predictors'] for b in p['backends'])" \
		"pred(svc('$VIP'), 'main')['new_connections'] > 0 and pred(svc('$VIP'), 'canary')['new_connections'] > 0" \
		"sum(b['new_connections_per_s'] for p in svc('$VIP')['predictors'] for b in p['backends']) > 0" ||
		why "services -j fields wrong"
}

test_flows() {
	local vip_ip=${VIP%:*}
	run flows flows || why "flows exited $?" || return 1
	grep_out flows '^CLIENT +VIP +BACKEND +AGE +IDLE' || return 1
	grep_out flows "^198\.18\.1\.2:[0-9]+ +$VIP +198\.18\.1[123]\.2:9000 .* open" || return 1
	run flows.json -j flows || why "flows -j exited $?" || return 1
	jcheck "$OUT/flows.json" \
		"len([f for f in d if f['state'] == 'open']) >= $HOLD_N" \
		"all(f['vip'] == '$VIP' and f['client'].startswith('198.18.1.2:') and f['protocol'] == 'tcp' for f in d)" \
		"all(f['backend'] in ('$B1:9000', '$B2:9000', '$B3:9000') for f in d)" \
		"all(f['age_s'] >= f['idle_s'] >= 0 for f in d)" \
		"len([f for f in d if f['packets_forward'] > 3 and f['packets_reply'] > 3 and f['bytes_forward'] > 0]) >= $HOLD_N" \
		"all(f['backend_id'] > 0 for f in d)" || why "flows -j fields wrong" || return 1
	grep_out flows '^CLIENT +VIP +BACKEND +AGE +IDLE +PKTS> +PKTS< +STATE +PROTO +INFL +REQS$' || return 1
	# What the kernel knows of the requests: from ferry_l7 when the data plane
	# has it (the held keep-alive connections are HTTP/1.1 and have answered
	# requests), null (text: -) without it.
	if [ -e "$FE_PIN/ferry_l7" ]; then
		jcheck "$OUT/flows.json" \
			"len([f for f in d if f['state'] == 'open' and f['l7_protocol'] == 'http1' and f['requests'] > 0 and f['streams_inflight'] >= 0]) >= $HOLD_N" ||
			why "flows -j: no http1 request counts from ferry_l7" || return 1
	else
		jcheck "$OUT/flows.json" \
			"all(f['l7_protocol'] is None and f['requests'] is None and f['streams_inflight'] is None for f in d)" ||
			why "flows -j: L7 fields without ferry_l7" || return 1
		grep_out flows "^198\.18\.1\.2:[0-9]+ .* open +- +- +-$" || return 1
	fi
	run flows.svc -j flows --service "$VIP" || why "flows --service exited $?" || return 1
	jcheck "$OUT/flows.svc" "len(d) >= $HOLD_N and all(f['vip'] == '$VIP' for f in d)" ||
		why "flows --service $VIP" || return 1
	run flows.othersvc -j flows --service "$vip_ip:8001" || why "flows --service exited $?" || return 1
	jcheck "$OUT/flows.othersvc" 'd == []' || why "flows --service for another port lists flows" || return 1
	run flows.be -j flows --backend "$B3" || why "flows --backend exited $?" || return 1
	jcheck "$OUT/flows.be" "len(d) >= 1 and all(f['backend'] == '$B3:9000' for f in d)" ||
		why "flows --backend $B3" || return 1
	run flows.beport -j flows --backend "$B1:9001" || return 1
	jcheck "$OUT/flows.beport" 'd == []' || why "flows --backend ADDR:wrong-port lists flows"
}

# flows --flush: a VIP's flows (both halves) go, an unknown SERVICE is exit 3,
# --flush with a list filter is a usage error, and the held connections get
# flow state again from their next packet (mid-stream pickup).
test_flows_flush() {
	local vip_ip=${VIP%:*}
	expect_rc 3 flush.unknown flows --flush "$vip_ip:8001" ||
		why "flows --flush for a VIP that is not a service" || return 1
	expect_rc 2 flush.both flows --flush --service "$VIP" ||
		why "flows --flush with --service is not a usage error" || return 1
	local t0 since
	t0=$(date +%s.%N)
	run flush.svc -j flows --flush "$VIP" || why "flows --flush $VIP exited $?" || return 1
	jcheck "$OUT/flush.svc" "d['deleted']['ferry_flows'] >= $HOLD_N" \
		"d['deleted']['ferry_rflows'] >= $HOLD_N" "d['total'] == sum(d['deleted'].values())" ||
		why "flows --flush $VIP did not delete the held connections' flows" || return 1
	sleep 1 # five rounds on each held connection (every 0.2 s)
	kill -0 "$HOLD_PID" 2>/dev/null || why "held connections' client died" || return 1
	run flush.after -j flows --service "$VIP" || return 1
	# Made since the flush: younger than the time the flush and this listing took (a
	# sanitizer build of ferryctl is slow, so no fixed bound).
	since=$(echo "$(date +%s.%N) - $t0" | bc -l)
	jcheck "$OUT/flush.after" "len([f for f in d if f['state'] == 'open' and f['age_s'] < $since]) >= $HOLD_N" ||
		why "held connections have no new flow state after the flush (mid-stream pickup)" || return 1
	run flush.text flows --flush "$VIP" || return 1
	grep_out flush.text "^flushed [0-9]+ flow entries of $VIP: ferry_flows [0-9]+ ferry_rflows [0-9]+"
}

test_latency() {
	run latency latency || why "latency exited $?" || return 1
	grep_out latency "^$VIP +default/iris" || return 1
	grep_out latency '^  main: [0-9]+ requests' || return 1
	grep_out latency '^  canary: [0-9]+ requests' || return 1
	# Quantiles are printed in ms; a model server on loopback answers in well under 10 s.
	grep -oE 'p(50|99) [0-9.]+ ms' "$OUT/latency" | awk '$2 + 0 >= 10000 { bad = 1 } END { exit bad }' ||
		why "latency prints absurd quantiles (unit error?): $(grep -m1 -oE 'p50 [0-9.]+ ms' "$OUT/latency")" || return 1
	run latency.json -j latency "$VIP" || why "latency -j VIP exited $?" || return 1
	jcheck "$OUT/latency.json" \
		"sorted(x['predictor'] for x in d) == ['canary', 'main']" \
		"all(x['vip'] == '$VIP' and x['deployment'] == 'default/iris' for x in d)" \
		"all(set(x) >= {'requests', 'connects', 'p50', 'p90', 'p99', 'p99.9'} for x in d)" \
		"all((x['p50'] is None) == (x['requests'] == 0) for x in d)" \
		"all(x['p50'] is None or 0 < x['p50'] <= x['p99'] < 10 for x in d)" ||
		why "latency -j fields wrong" || return 1
	run latency.dep -j latency default/iris || why "latency default/iris exited $?" || return 1
	jcheck "$OUT/latency.dep" 'len(d) == 2' || why "latency by deployment name" || return 1
	# Sampling: one flow in sample_every; the warm-up alone makes hundreds.
	if ! jcheck "$OUT/latency.json" 'all(x["requests"] > 0 and x["connects"] > 0 for x in d)' 2>/dev/null; then
		why "no latency samples after $(jcheck "$FE_RUN/warmup.json" True && echo 400+) connections (kernel telemetry not in yet?): $(tr -d '\n ' <"$OUT/latency.json" | head -c 300)"
	fi
}

test_top() {
	run top top --iterations 1 --interval 1 || why "top exited $?" || return 1
	grep_out top '^SERVICE +PREDICTOR +WEIGHT +SHARE +REQ/s +CONN/s +p50 +p99 +5xx/s +RST/s' || return 1
	grep_out top "^$VIP +main +80\.0% +[0-9.]+% +[0-9.]+ " || return 1
	grep_out top '^ +canary +20\.0% ' || return 1
	grep -oE '[0-9.]+ms' "$OUT/top" | awk '$1 + 0 >= 10000 { bad = 1 } END { exit bad }' ||
		why "top prints absurd p50/p99 (unit error?): $(grep -oE '[0-9.]+ms' "$OUT/top" | head -1)" || return 1
	# The trickle (20 new connections/s) shows as a rate, of requests ($5) and connections ($6).
	awk -v vip="$VIP" '$1 == vip && $2 == "main" { found = 1; if ($5 + 0 > 0 && $6 + 0 > 0) ok = 1 } END { exit !(found && ok) }' \
		"$OUT/top" || why "top shows no requests/s or new connections/s for main under a 20/s trickle" || return 1
	# Beside the busy service, one that gets no traffic: its latency columns
	# say "-" (no sampled request in the interval), never nan; -j says null.
	# And one that samples no flow (latency-sample "0") under load: its
	# requests are still counted exactly (every flow), so REQ/s and the share
	# are numbers; only the latency columns say "-" (top scaled the sampled
	# latency count by N, and showed "-" and null for such a service).
	local idle=198.18.100.13:8000 uns=198.18.100.14:8000 rc=0 lg=
	"$PY" "$FE_BIN/manifests.py" write --dir "$FE_CONF" --name idle --vip "$idle" \
		--predictor "solo:100:$B1" >/dev/null || return 1
	"$PY" "$FE_BIN/manifests.py" write --dir "$FE_CONF" --name unsampled --vip "$uns" \
		--predictor "solo:100:$B1" --annotation ferry.io/latency-sample=0 >/dev/null || return 1
	fe_wait 10 idle_listed "$idle" || why "service $idle never shows in services -j" || rc=1
	fe_wait 10 idle_listed "$uns" || why "service $uns never shows in services -j" || rc=1
	if [ $rc -eq 0 ]; then
		fe_loadgen_bg "$FE_RUN/unsampled.json" --target "$uns" --keepalive --connections 2 --rate 50
		lg=$FE_LAST_PID
		sleep 1
	fi
	[ $rc -eq 0 ] && { run top.idle top --iterations 1 --interval 2 || why "top exited $?" || rc=1; }
	[ $rc -eq 0 ] && { run top.idle.json -j top --iterations 1 --interval 2 || why "top -j exited $?" || rc=1; }
	[ -z "$lg" ] || fe_loadgen_stop "$lg"
	"$PY" "$FE_BIN/manifests.py" delete --dir "$FE_CONF" --name idle >/dev/null
	"$PY" "$FE_BIN/manifests.py" delete --dir "$FE_CONF" --name unsampled >/dev/null
	fe_wait 10 idle_gone "$idle" || why "service $idle still listed after its manifest went" || rc=1
	fe_wait 10 idle_gone "$uns" || why "service $uns still listed after its manifest went" || rc=1
	[ $rc -eq 0 ] || return 1
	! grep -qi 'nan' "$OUT/top.idle" || why "top prints nan: $(grep -i nan "$OUT/top.idle" | head -1)" || return 1
	grep_out top.idle "^${idle//./\\.} +solo +100\.0% +0\.0% +0\.0 +0\.0 +- +- +0\.0 +0\.0$" || return 1
	grep_out top.idle "^$VIP +main +80\.0% +[0-9.]+% +[0-9.]+ +[0-9.]+ +[0-9.]+ms +[0-9.]+ms " || return 1
	[ "$(wc -l <"$OUT/top.idle.json")" -eq 1 ] || why "top -j --iterations 1 printed more than one line" || return 1
	grep_out top.idle "^${uns//./\\.} +solo +100\.0% +100\.0% +[0-9.]+ +[0-9.]+ +- +- " || return 1
	"$PY" - "$OUT/top.idle.json" "$idle" "$VIP" "$uns" <<'EOF' || why "top -j: $(head -c 400 "$OUT/top.idle.json")"
import json, sys
d = json.loads(open(sys.argv[1]).read())
svcs = {s["vip"]: {p["name"]: p for p in s["predictors"]} for s in d["services"]}
idle, busy, uns = svcs[sys.argv[2]]["solo"], svcs[sys.argv[3]], svcs[sys.argv[4]]["solo"]
assert uns["requests_per_s"] > 0 and uns["share_pct"] == 100 and uns["p50_s"] is None, uns
assert d["interval_s"] == 2
assert idle["p50_s"] is None and idle["p99_s"] is None, idle
assert idle["connections_per_s"] == 0 and idle["share_pct"] == 0 and idle["weight_pct"] == 100, idle
assert idle["requests_per_s"] == 0 and idle["connection_share_pct"] == 0, idle
m = busy["main"]
assert m["connections_per_s"] > 0 and 0 < m["p50_s"] <= m["p99_s"] < 10, m
assert m["requests_per_s"] > 0 and 0 < m["share_pct"] <= 100, m
assert busy["canary"]["weight_pct"] == 20, busy["canary"]
EOF
}
idle_listed() {
	fctl -j services >"$FE_RUN/idle.json" 2>/dev/null && grep -q "\"$1\"" "$FE_RUN/idle.json"
}
idle_gone() {
	fctl -j services >"$FE_RUN/idle.json" 2>/dev/null && ! grep -q "\"$1\"" "$FE_RUN/idle.json"
}

# A bad manifest beside the good one: status names the file and the field,
# the good service is untouched, and the error goes away with the file.
test_config_errors() {
	"$PY" "$FE_BIN/manifests.py" write --dir "$FE_RUN" --name broken --vip 198.18.100.12:8000 \
		--predictor "main:80:$B1" --predictor "canary:30:$B3" >/dev/null || return 1
	mv "$FE_RUN/broken.yaml" "$FE_CONF/broken.yaml"
	sleep 1
	run cfgerr.status status || return 1
	grep_out cfgerr.status '^config errors: [1-9]' || return 1
	grep_out cfgerr.status 'broken\.yaml.*traffic' || return 1
	# Another spelling of the pin path names the same status file (it once
	# read another one and said "config errors: 0").
	run cfgerr.status.slash --pin-path "$FE_PIN/" status || return 1
	grep_out cfgerr.status.slash '^config errors: [1-9]' || return 1
	run cfgerr.status.slashes --pin-path "${FE_PIN%/*}//${FE_PIN##*/}//" status || return 1
	grep_out cfgerr.status.slashes '^config errors: [1-9]' || return 1
	run cfgerr.status.json -j status || return 1
	jcheck "$OUT/cfgerr.status.json" \
		"any(e['file'].endswith('broken.yaml') and 'traffic' in e['field'] and e['line'] > 0 for e in d['config_errors'])" \
		'd["services"] == 1' || why "status -j config_errors" || return 1
	cp "$(fo_status_file)" "$OUT/cfgerr.statusfile"
	jcheck "$(fo_status_file)" "d['config_errors'] >= 1 and any('broken.yaml' in e['text'] for e in d['errors'])" ||
		why "status file $(fo_status_file) lacks the error" || return 1
	run cfgerr.services -j services || return 1
	jcheck "$OUT/cfgerr.services" "len(d) == 1 and d[0]['vip'] == '$VIP'" ||
		why "the rejected deployment shows as a service" || return 1
	rm -f "$FE_CONF/broken.yaml"
	sleep 1
	run cfgerr.fixed -j status || return 1
	jcheck "$OUT/cfgerr.fixed" 'd["config_errors"] == []' || why "the error stays after the file is removed"
}

test_trace() {
	local pid
	# trace stops after --count events; the timeout guards a hang.
	echo "ferryctl trace --count 5" >"$OUT/trace.cmd"
	timeout 20 nsenter --net="/run/netns/$FE_NODE" "$CTL" --pin-path "$FE_PIN" trace --count 5 \
		>"$OUT/trace" 2>"$OUT/trace.err" || why "trace --count 5 failed or hung (exit $?)" || return 1
	[ "$(wc -l <"$OUT/trace")" -eq 5 ] || why "trace --count 5 printed $(wc -l <"$OUT/trace") lines" || return 1
	grep -Eq ' (xdp|tc-in|tc-eg) +foct-n[0-3] .* (new-flow|flow-hit|reply) +svc [0-9]+ pred [0-9]+ backend [0-9]+$' "$OUT/trace" ||
		why "trace lines malformed: $(head -2 "$OUT/trace")" || return 1
	echo "ferryctl -j trace --service $VIP --count 20" >"$OUT/trace.json.cmd"
	timeout 20 nsenter --net="/run/netns/$FE_NODE" "$CTL" --pin-path "$FE_PIN" -j trace \
		--service "$VIP" --count 20 >"$OUT/trace.json" 2>"$OUT/trace.json.err" ||
		why "trace -j --service failed or hung (exit $?)" || return 1
	[ "$(wc -l <"$OUT/trace.json")" -eq 20 ] ||
		why "trace -j --count 20 printed $(wc -l <"$OUT/trace.json") events" || return 1
	jcheck "$OUT/trace.json" \
		"all(set(e) >= {'ts', 'hook', 'ifname', 'src', 'dst', 'reason', 'service_id', 'predictor_id', 'backend_id'} for e in d)" \
		"all(e['dst'] == '$VIP' for e in d if e['reason'] != 'reply')" \
		"{e['reason'] for e in d} <= {'new-flow', 'flow-hit', 'reply'}" \
		"{e['reason'] for e in d} & {'new-flow', 'flow-hit'}" \
		"all(e['service_id'] > 0 and e['backend_id'] > 0 for e in d if e['reason'] in ('new-flow', 'flow-hit'))" \
		"all(e['ifname'] == 'foct-n0' for e in d if e['reason'] in ('new-flow', 'flow-hit'))" ||
		why "trace -j events wrong" || return 1
	# Under a burst many events wait in the ring at once: --count still means N.
	burst 300 "$FE_RUN/trace-burst.json" &
	local bpid=$!
	echo "ferryctl -j trace --count 1" >"$OUT/trace.one.cmd"
	timeout 20 nsenter --net="/run/netns/$FE_NODE" "$CTL" --pin-path "$FE_PIN" -j trace \
		--count 1 >"$OUT/trace.one" 2>"$OUT/trace.one.err"
	wait "$bpid"
	[ "$(wc -l <"$OUT/trace.one")" -eq 1 ] ||
		why "trace --count 1 under a burst printed $(wc -l <"$OUT/trace.one") events" || return 1
	# Tracing is switched off again when trace exits.
	"$PY" - "$FE_PIN" <<'EOF' || why "trace left tracing on (ferry_config.trace_every != 0)"
import json, subprocess, sys
out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", sys.argv[1] + "/ferry_config"],
                     capture_output=True, text=True, check=True).stdout
v = json.loads(out)[0]["formatted"]["value"]
sys.exit(0 if v["trace_every"] == 0 else 1)
EOF
}

test_drain() {
	drain_checks
	local rc=$?
	# Whatever failed above, leave the backend undrained for the later tests.
	[ "$rc" -eq 0 ] || run undrain.cleanup undrain "$B1"
	return $rc
}

drain_checks() {
	local out="$FE_RUN/drain.json"
	expect_rc 0 drain drain "$B1" || why "drain $B1" || return 1
	grep_out drain "^$B1: drained in 1 service" || return 1
	run drain.services -j services || return 1
	jcheck "$OUT/drain.services" \
		"[b['state'] for b in pred(svc('$VIP'), 'main')['backends'] if b['address'] == '$B1:9000'] == ['drained']" \
		"[b['state'] for b in pred(svc('$VIP'), 'main')['backends'] if b['address'] == '$B2:9000'] == ['active']" ||
		why "services does not show $B1 drained" || return 1
	run drain.plain services || return 1
	sleep 1
	burst 200 "$out" || return 1
	jcheck "$out" 'd["error_total"] == 0' "d['backends'].get('main-0', 0) == 0" \
		"d['backends'].get('main-1', 0) > 0" ||
		why "a drained backend got new connections, or requests failed ($(burst_facts "$out"))" || return 1
	# Draining again finds nothing to do.
	expect_rc 3 drain.again drain "$B1:9000" || why "draining a drained backend" || return 1
	expect_rc 0 undrain undrain "$B1:9000" || why "undrain $B1:9000" || return 1
	run undrain.services -j services || return 1
	jcheck "$OUT/undrain.services" \
		"all(b['state'] == 'active' for b in pred(svc('$VIP'), 'main')['backends'])" ||
		why "services does not show $B1 active after undrain" || return 1
	sleep 1
	burst 200 "$out" || return 1
	jcheck "$out" 'd["error_total"] == 0' "d['backends'].get('main-0', 0) > 0" ||
		why "undrain did not restore $B1, or requests failed ($(burst_facts "$out"))"
}

test_weights_override() {
	local out="$FE_RUN/override.json"
	expect_rc 0 weights weights "$VIP" main=0 canary=100 || why "weights main=0 canary=100" || return 1
	grep_out weights "^$VIP \(default/iris\): canary = 100\.00% \(override\)" || return 1
	sleep 1
	burst 200 "$out" || return 1
	only "$out" canary || why "new connections do not all go to canary 1 s after the override" || return 1
	run weights.services services || return 1
	grep_out weights.services '^  canary +configured +20\.00% +effective +100\.00% +OVERRIDE 100\.00%' || return 1
	run weights.services.json -j services || return 1
	jcheck "$OUT/weights.services.json" \
		"pred(svc('$VIP'), 'canary')['weight_override'] == 100 and pred(svc('$VIP'), 'canary')['weight_effective'] == 100" \
		"pred(svc('$VIP'), 'main')['weight_override'] == 0 and pred(svc('$VIP'), 'main')['weight_effective'] == 0" \
		"pred(svc('$VIP'), 'main')['weight_configured'] == 80" || why "services -j does not show the override" || return 1
	# Open connections are never moved: the held ones still answer.
	kill -0 "$HOLD_PID" 2>/dev/null || why "held connections' client died" || return 1
	# `weights` help says the override "shows in status and services".
	run weights.status status || return 1
	run weights.status.json -j status || return 1
	grep -qi override "$OUT/weights.status" && grep -qi override "$OUT/weights.status.json" ||
		why "status (plain and -j) does not mention the override in force ('weights --help': it shows in status and services)"
}

test_ferryd_down() {
	local old=$FERRYD_PID out="$FE_RUN/down.json"
	fe_ferryd_stop TERM || why "ferryd did not exit on SIGTERM" || return 1
	run down.status status || why "status with ferryd down exited $?" || return 1
	grep_out down.status '^ferryd: +NOT RUNNING' || return 1
	run down.status.json -j status || return 1
	jcheck "$OUT/down.status.json" "d['ferryd']['alive'] is False and d['ferryd']['pid'] == $old" \
		"len(d['links']) == 4 and all(l['attached'] for l in d['links'])" ||
		why "status -j with ferryd down" || return 1
	burst 100 "$out" || return 1
	only "$out" canary || why "with ferryd down, forwarding (with the override) stopped" || return 1
	run down.services -j services || why "services with ferryd down exited $?" || return 1
	jcheck "$OUT/down.services" "pred(svc('$VIP'), 'canary')['weight_override'] == 100" ||
		why "services with ferryd down"
}

# SIGTERM must take ferryd's own exit path (it logs it and exits 0), not the
# default action: a process killed by the signal skips its cleanup.
test_sigterm_clean() {
	grep -q 'signal 15: exiting' "$FE_RUN/ferryd.log" ||
		why "ferryd did not log its SIGTERM exit ('signal 15: exiting'): killed by the signal's default action (exit 143)? (a thread that does not block SIGTERM takes it)"
}

test_weights_restart() {
	local out="$FE_RUN/restart.json"
	[ -z "$FERRYD_PID" ] || fe_ferryd_stop TERM || why "ferryd did not stop" || return 1
	fe_ferryd_start
	fe_wait 10 ferryd_alive_is "$FERRYD_PID" || why "restarted ferryd never shows alive" || return 1
	# Past the new ferryd's first sync, which would be what undoes the override.
	sleep 1
	run restart.services -j services || return 1
	jcheck "$OUT/restart.services" \
		"pred(svc('$VIP'), 'canary')['weight_override'] == 100 and pred(svc('$VIP'), 'canary')['weight_effective'] == 100" \
		"pred(svc('$VIP'), 'main')['weight_effective'] == 0" ||
		why "the override did not survive a ferryd restart (SIGTERM + start)" || return 1
	burst 200 "$out" || return 1
	only "$out" canary || why "after a ferryd restart new connections left the canary" || return 1
	run restart.status -j status || return 1
	jcheck "$OUT/restart.status" "d['ferryd']['alive'] and d['ferryd']['pid'] == $FERRYD_PID" ||
		why "status after restart"
}

# SIGHUP: ferryd re-reads everything; the override must stay, ferryd must live.
test_sighup() {
	local pid=$FERRYD_PID out="$FE_RUN/hup.json"
	[ -n "$pid" ] || why "no ferryd running" || return 1
	kill -HUP "$pid"
	sleep 2
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null
		local rc=$?
		FERRYD_PID=""
		fe_ferryd_start # for the tests after this one
		fe_wait 10 ferryd_alive_is "$FERRYD_PID"
		why "ferryd died on SIGHUP (exit $rc; 129 = killed by SIGHUP); restarted it"
		return 1
	fi
	grep -q 'SIGHUP: re-reading' "$FE_RUN/ferryd.log" || why "ferryd logged no SIGHUP resync" || return 1
	run hup.services -j services || return 1
	jcheck "$OUT/hup.services" "pred(svc('$VIP'), 'canary')['weight_override'] == 100" \
		"pred(svc('$VIP'), 'canary')['weight_effective'] == 100" ||
		why "the override did not survive a SIGHUP resync" || return 1
	burst 100 "$out" || return 1
	only "$out" canary || why "after SIGHUP new connections left the canary"
}

# A manifest edit while an override is in force: the new configured weights
# show, the override keeps deciding.
test_override_vs_edit() {
	local out="$FE_RUN/edit.json"
	fe_manifest iris "$VIP" "main:70:$B1,$B2" "canary:30:$B3"
	sleep 1
	run edit.services -j services || return 1
	jcheck "$OUT/edit.services" \
		"pred(svc('$VIP'), 'main')['weight_configured'] == 70 and pred(svc('$VIP'), 'canary')['weight_configured'] == 30" ||
		why "the manifest edit (70/30) did not apply" || return 1
	jcheck "$OUT/edit.services" \
		"pred(svc('$VIP'), 'canary')['weight_override'] == 100 and near(pred(svc('$VIP'), 'canary')['weight_effective'], 100)" ||
		why "a manifest edit dropped the override" || return 1
	burst 100 "$out" || return 1
	only "$out" canary || why "after a manifest edit new connections left the canary"
	local rc=$?
	fe_manifest iris "$VIP" "main:80:$B1,$B2" "canary:20:$B3"
	sleep 1
	return $rc
}

test_weights_rollback() {
	local out="$FE_RUN/rollback.json"
	expect_rc 0 rollback weights "$VIP" --rollback || why "weights --rollback" || return 1
	grep_out rollback "^$VIP \(default/iris\): main = 100\.00% \(override\)" || return 1
	sleep 1
	burst 200 "$out" || return 1
	only "$out" main || why "after --rollback new connections do not all go to main" || return 1
	jcheck "$out" "d['backends'].get('main-0', 0) > 0 and d['backends'].get('main-1', 0) > 0" ||
		why "after --rollback not both main backends serve" || return 1
	run rollback.plain services || return 1
	run rollback.services -j services || return 1
	jcheck "$OUT/rollback.services" "pred(svc('$VIP'), 'main')['weight_override'] == 100" \
		"pred(svc('$VIP'), 'canary')['weight_effective'] == 0" || why "services after --rollback" || return 1
	# --to, by deployment name.
	expect_rc 0 rollback.to weights default/iris --rollback --to canary || why "weights default/iris --rollback --to canary" || return 1
	sleep 1
	burst 100 "$out" || return 1
	only "$out" canary || why "--rollback --to canary" || return 1
	expect_rc 0 rollback.back weights default/iris --rollback || return 1
	sleep 1
	burst 100 "$out" || return 1
	only "$out" main || why "--rollback after --to canary does not pick main again"
}

test_weights_clear() {
	local out="$FE_RUN/clear.json"
	expect_rc 0 clear weights "$VIP" --clear || why "weights --clear" || return 1
	grep_out clear "override cleared" || return 1
	run clear.services -j services || return 1
	jcheck "$OUT/clear.services" \
		"all(p['weight_override'] is None for p in svc('$VIP')['predictors'])" \
		"near(pred(svc('$VIP'), 'main')['weight_effective'], 80) and near(pred(svc('$VIP'), 'canary')['weight_effective'], 20)" ||
		why "services after --clear" || return 1
	sleep 1
	burst 1000 "$out" || return 1
	jcheck "$out" 'd["error_total"] == 0' || why "errors after --clear: $(tr -d '\n' <"$out" | head -c 300)" || return 1
	# The 80/20 split is back: canary's share within 4.5 standard deviations of 0.2 (fe_share_check).
	local share
	share=$(fe_share_check "$out" canary 0.2) || why "after --clear the 80/20 split is not back: $share"
}

# The state one `weights` write leaves for deployment default/iris, as raw
# bytes: its ferry_selectors entry, its predictors' ferry_pred_meta and its
# ferry_svc_meta (table_generation apart: every write bumps it). JSON to $1.
fo_weights_state() {
	"$PY" - "$FE_PIN" "$1" <<'EOF2'
import json, struct, subprocess, sys
pin, out = sys.argv[1], sys.argv[2]
def bt(*args):
    return json.loads(subprocess.run(["bpftool", "-j", "map"] + list(args), check=True,
                                     capture_output=True, text=True).stdout)
def raw(v):
    return bytes(int(b, 16) for b in v)
def key(i):
    return ["key"] + ["%d" % b for b in struct.pack("<I", i)]
state = {}
for e in bt("dump", "pinned", pin + "/ferry_svc_meta"):
    meta = raw(e["value"])
    if meta[24:152].rstrip(b"\0") != b"default/iris":
        continue
    sid = struct.unpack_from("<I", raw(e["key"]))[0]
    npred = struct.unpack_from("<I", meta, 20)[0]
    pids = struct.unpack_from("<16I", meta, 152)[:npred]
    state[sid] = {
        "meta": (meta[:216]).hex(),
        "sel": raw(bt("lookup", "pinned", pin + "/ferry_selectors", *key(sid))["value"]).hex(),
        "preds": {str(p): raw(bt("lookup", "pinned", pin + "/ferry_pred_meta", *key(p))["value"]).hex()
                  for p in pids},
    }
json.dump(state, open(out, "w"), indent=1, sort_keys=True)
EOF2
}

# The fast path (resolve SERVICE from ferry_svc_meta, mirror that service only)
# must write exactly what the full mirror writes (FERRYCTL_WEIGHTS_FULL=1, the
# path ferryctl took before): each step is run by one path, then repeated by
# the other, which must find nothing to change in ferry_selectors and write
# the same predictor and service metadata.
test_weights_fast_vs_full() {
	local i step first prev="" name svc
	local steps=("main=30 canary=70" "--rollback" "--rollback --to canary"
		"main=33.33 canary=66.67" "--clear")
	for i in "${!steps[@]}"; do
		step=${steps[$i]}
		# Alternate the order, and the VIP and deployment forms.
		svc=$VIP
		[ $((i % 2)) -eq 1 ] && svc=default/iris
		for first in fast full; do
			[ $((i % 2)) -eq 1 ] && first=$([ "$first" = fast ] && echo full || echo fast)
			name="fvf.$i.$first"
			# shellcheck disable=SC2086 # step is words
			if [ "$first" = full ]; then
				(export FERRYCTL_WEIGHTS_FULL=1; run "$name" weights "$svc" $step)
			else
				run "$name" weights "$svc" $step
			fi || why "ferryctl weights $svc $step ($first path) exited $(cat "$OUT/$name.rc")" || return 1
			fo_weights_state "$OUT/$name.state" || why "cannot read the maps after $name" || return 1
		done
		"$PY" - "$OUT"/fvf."$i".fast.state "$OUT"/fvf."$i".full.state "$prev" "$step" <<'EOF2' ||
import json, sys
fast, full = (json.load(open(p)) for p in sys.argv[1:3])
prev = json.load(open(sys.argv[3])) if sys.argv[3] else None
if not fast:
    sys.exit("no service of default/iris found in ferry_svc_meta")
if fast != full:
    for sid in sorted(set(fast) | set(full)):
        for part in ("sel", "preds", "meta"):
            a, b = fast.get(sid, {}).get(part), full.get(sid, {}).get(part)
            if a != b:
                print("  service %s %s: fast %s, full %s" % (sid, part, a, b), file=sys.stderr)
    sys.exit("weights %s: the fast path and the full mirror wrote different bytes" % sys.argv[4])
if prev is not None and all(fast[s]["sel"] == prev[s]["sel"] for s in fast):
    sys.exit("weights %s changed nothing in ferry_selectors" % sys.argv[4])
EOF2
			why "weights $step: fast and full paths differ (see stderr)" || return 1
		prev="$OUT/fvf.$i.fast.state"
	done
	run fvf.services -j services || return 1
	jcheck "$OUT/fvf.services" "all(p['weight_override'] is None for p in svc('$VIP')['predictors'])" ||
		why "the override is still in force after the last --clear"
}

test_exit_codes() {
	local bad=""
	ec() { # WANT NAME ARGS...
		local want=$1 name=$2
		shift 2
		run "ec.$name" "$@"
		local rc=$?
		[ "$rc" -eq "$want" ] || bad+=" [ferryctl $* -> $rc, want $want]"
	}
	ec 3 weights-unknown-vip weights 198.18.100.99:8000 main=100
	ec 3 weights-unknown-deploy weights default/nope --rollback
	ec 3 weights-unknown-pred weights "$VIP" nosuch=100
	ec 3 rollback-unknown-to weights "$VIP" --rollback --to nosuch
	ec 3 latency-unknown latency 198.18.100.99:8000
	ec 3 drain-unknown drain 198.18.99.9
	ec 3 undrain-not-drained undrain "$B2"
	ec 2 no-command
	ec 2 unknown-command frobnicate
	ec 2 unknown-option --frob status
	ec 2 weights-sum weights "$VIP" main=50 canary=20
	ec 2 weights-pct weights "$VIP" main=abc
	ec 2 weights-pct-nan weights "$VIP" main=nan canary=100 # found by fuzz/ferryctl_args
	ec 2 weights-pct-hex weights "$VIP" main=0x32 canary=50
	# A predictor named twice once split its weight (main=100 main=0: 50/50).
	ec 2 weights-twice weights "$VIP" main=100 main=0
	ec 2 weights-twice-sum weights default/iris main=60 main=40
	ec 2 weights-no-service weights
	ec 2 weights-two-modes weights "$VIP" --clear --rollback
	ec 2 weights-bad-vip weights 198.18.100:x main=100
	ec 2 flows-bad-service flows --service nonsense
	ec 2 flows-bad-backend flows --backend 1.2.3
	ec 2 trace-bad-every trace --every 0
	ec 2 drain-bad drain not-an-address
	ec 2 drain-none drain
	ec 2 reset-no-tty reset </dev/null
	ec 2 reset-bad reset --frob
	ec 2 pin-path-no-value --pin-path
	ec 2 pin-path-no-value-after status --pin-path
	local f
	for f in pin-path-no-value pin-path-no-value-after; do
		grep -q -- '--pin-path needs a value' "$OUT/ec.$f.err" ||
			bad+=" [$(cat "$OUT/ec.$f.cmd") says '$(head -1 "$OUT/ec.$f.err")', want '--pin-path needs a value']"
	done
	ec 2 latency-bad latency not:an:endpoint:x
	# Numeric options: the whole value, in its range. These ran forever, hung
	# or were cut to something else; the timeout turns a hang into a verdict.
	local FO_CTL_TIMEOUT=10
	ec 2 top-iterations-abc top --iterations abc
	ec 2 top-iterations-neg top --iterations -3
	ec 2 top-interval-nan top --iterations 1 --interval nan
	ec 2 top-interval-inf top --iterations 1 --interval inf
	ec 2 top-interval-huge top --iterations 1 --interval 1e9
	ec 2 top-interval-abc top --iterations 1 --interval abc
	ec 2 trace-count-abc trace --count abc
	ec 2 trace-count-neg trace --count -5
	ec 2 trace-every-huge trace --every 4294967297
	FO_CTL_TIMEOUT=""
	# A command that cannot do its job: 1.
	run ec.nopin --pin-path /sys/fs/bpf/ferry-fo-nonexistent status
	[ "$(cat "$OUT/ec.nopin.rc")" -eq 1 ] || bad+=" [status with a missing --pin-path -> $(cat "$OUT/ec.nopin.rc"), want 1]"
	run ec.top-nopin --pin-path /sys/fs/bpf/ferry-fo-nonexistent top --iterations 1
	[ "$(cat "$OUT/ec.top-nopin.rc")" -eq 1 ] || bad+=" [top with a missing --pin-path -> $(cat "$OUT/ec.top-nopin.rc"), want 1]"
	# Nothing above changed the split.
	run ec.after -j services
	jcheck "$OUT/ec.after" "all(p['weight_override'] is None for p in svc('$VIP')['predictors'])" \
		"all(b['state'] == 'active' for p in svc('$VIP')['predictors'] for b in p['backends'])" ||
		bad+=" [a failed command changed state]"
	[ -z "$bad" ] || why "wrong exit codes:$bad"
}

# Every pinned map: show and dump with bpftool; BTF must name the fields.
test_bpftool_maps() {
	local p
	[ -d "$FE_PIN" ] || why "no $FE_PIN" || return 1
	local b fails=""
	for p in "$FE_PIN"/*; do
		[ -e "$p" ] || continue
		[ -d "$p" ] && continue # tables/ below; links/ holds link pins
		b=$(basename "$p")
		if ! bpftool -j map show pinned "$p" >"$OUT/bpftool.show.$b" 2>&1; then
			# Not a map: it must be a program or a link, which bpftool can show.
			bpftool prog show pinned "$p" >/dev/null 2>&1 ||
				bpftool link show pinned "$p" >/dev/null 2>&1 ||
				fails+=" [$b: bpftool shows it neither as a map, a program nor a link]"
			continue
		fi
		# A ring buffer has no elements to dump, and socket storage is keyed by
		# socket fds, which a dump cannot walk; every other map must dump.
		grep -q '"type":"ringbuf"\|"type":"sk_storage"' "$OUT/bpftool.show.$b" && continue
		bpftool -j map dump pinned "$p" >"$OUT/bpftool.dump.$b" 2>"$OUT/bpftool.dump.$b.err" ||
			fails+=" [bpftool -j map dump $b: $(head -c 200 "$OUT/bpftool.dump.$b.err")]"
		# Plain excerpts (docs/operations.md quotes them).
		if bpftool map dump pinned "$p" >"$OUT/bpftool.plain.full" 2>&1; then
			head -60 "$OUT/bpftool.plain.full" >"$OUT/bpftool.plain.$b"
		else
			fails+=" [bpftool map dump $b (plain): $(head -c 200 "$OUT/bpftool.plain.full")]"
		fi
	done
	for p in "$FE_PIN"/tables/*; do
		[ -e "$p" ] || continue
		b=$(basename "$p")
		bpftool -j map show pinned "$p" >"$OUT/bpftool.show.table.$b" 2>&1 &&
			bpftool -j map dump pinned "$p" >"$OUT/bpftool.dump.table.$b" 2>&1 ||
			fails+=" [bpftool show/dump of table $b: $(head -c 200 "$OUT/bpftool.show.table.$b")]"
	done
	for p in "$FE_PIN"/links/*; do
		[ -e "$p" ] || continue
		bpftool link show pinned "$p" >/dev/null 2>&1 ||
			fails+=" [links/$(basename "$p"): bpftool link show fails]"
	done
	[ -z "$fails" ] || why "bpftool failed on pins:$fails" || return 1
	"$PY" - "$FE_PIN" "$OUT" <<'EOF' || why "bpftool map show/dump of the pins"
import json, os, sys
pin, out = sys.argv[1], sys.argv[2]
# map name -> (bpftool type, key fields, value fields); None: no struct to check.
want = {
    "ferry_config": ("array", None, {"abi_version", "hash_seed", "trace_every", "udp_timeout_s",
                     "generation", "sync_unix_ns", "ferryd_pid", "features", "heartbeat_unix_ns"}),
    "ferry_services": ("hash", {"addr", "port", "proto", "family"},
                       {"id", "flags", "table_size", "sample_every", "hash_mode"}),
    "ferry_tables": ("array_of_maps", None, None),
    "ferry_selectors": ("array", None, {"npredictors", "generation", "preds"}),
    "ferry_backends": ("array", None, {"addr", "port", "family", "state", "predictor_id",
                       "svc_id", "flags"}),
    "ferry_flows": (None, {"saddr", "daddr", "sport", "dport", "proto", "family"},
                    {"backend_addr", "backend_port", "family", "flags", "backend_id",
                     "predictor_id", "svc_id", "created_ns", "last_ns", "pending_ns",
                     "packets", "bytes", "nh_expires_ns", "nh_ifindex", "nh_in_ifindex",
                     "nh_dmac", "nh_smac"}),
    "ferry_rflows": (None, {"saddr", "daddr", "sport", "dport", "proto", "family"},
                     {"vip_addr", "vip_port", "family", "flags", "backend_id", "fwd",
                      "packets", "bytes"}),
    "ferry_stats": ("percpu_array", None, {"fwd_packets", "fwd_bytes", "rev_packets",
                    "rev_bytes", "new_flows", "flow_misses", "resets", "http", "syn_timeouts"}),
    "ferry_svc_stats": ("percpu_array", None, {"no_backend", "fragments"}),
    "ferry_counters": ("percpu_array", None, None),
    "ferry_latency": (None, {"id", "kind", "metric"}, {"count", "sum_ns", "bucket"}),
    "ferry_trace": ("ringbuf", None, None),
    "ferry_tx_ports": (None, None, None),
    "ferry_vip_bits": ("array", None, None),
    "ferry_skipped": ("array", None, {"next", "tag"}),
    "ferry_svc_meta": (None, None, {"vip", "npredictors", "deployment", "predictor_ids",
                       "table_generation"}),
    "ferry_pred_meta": (None, None, {"svc_id", "flags", "weight_configured",
                        "weight_effective", "weight_override", "backends_ready",
                        "backends_draining", "name", "retired"}),
    "ferry_links": (None, None, {"ifname", "hooks"}),
    "ferry_sock_sel": ("sk_storage", None, None),
    # rebalancing's marks, pinned by ferryd's iterator (empty unless a round runs).
    "ferry_rb_marks": ("hash", None, None),
    # ferryd's name index for ferryctl (user/kernel/sync_names.c builds its BTF).
    "ferry_svc_names": ("hash", None, {"nids", "ids"}),
}
bad = []
def fields(x, acc):
    if isinstance(x, dict):
        for k, v in x.items():
            acc.add(k)
            fields(v, acc)
    elif isinstance(x, list):
        for v in x:
            fields(v, acc)
    return acc
pins = set(os.listdir(pin))
maps = {p for p in pins if p.startswith("ferry_")}
missing = set(want) - maps
if missing:
    bad.append("pins missing: %s" % sorted(missing))
for name in sorted(maps):
    try:
        show = json.load(open(os.path.join(out, "bpftool.show." + name)))
    except ValueError:
        continue  # a program pin, not a map
    w = want.get(name)
    if not w:
        print("  note: unchecked pin %s (%s)" % (name, show.get("type")), file=sys.stderr)
        continue
    typ, kf, vf = w
    if show.get("name") != name:
        bad.append("%s: bpftool names it %r" % (name, show.get("name")))
    if typ and show.get("type") != typ:
        bad.append("%s: type %s, expected %s" % (name, show.get("type"), typ))
    if (kf or vf) and not show.get("btf_id"):
        bad.append("%s: no BTF (btf_id missing): dump would be raw bytes" % name)
    if typ in ("ringbuf", "sk_storage"):
        continue
    raw = open(os.path.join(out, "bpftool.dump." + name)).read()
    try:
        dump = json.loads(raw)
    except ValueError:
        bad.append("%s: bpftool -j map dump is not JSON: %r" % (name, raw[:200]))
        continue
    if not (kf or vf):
        continue
    if not dump:
        bad.append("%s: empty, fields cannot be checked" % name)
        continue
    fmt = [e.get("formatted") for e in dump]
    if not all(fmt):
        bad.append("%s: entries without 'formatted' (no BTF?)" % name)
        continue
    kset, vset = set(), set()
    for f in fmt:
        fields(f.get("key"), kset)
        fields(f.get("value"), vset)
        for pc in f.get("values", []):  # per-CPU maps
            fields(pc.get("value"), vset)
    if kf and not kf <= kset:
        bad.append("%s: key fields %s missing (has %s)" % (name, sorted(kf - kset), sorted(kset)))
    if vf and not vf <= vset:
        bad.append("%s: value fields %s missing (has %s)" % (name, sorted(vf - vset), sorted(vset)))
# Values that must be there, not only names.
def dump(name):
    return [e["formatted"] for e in json.load(open(os.path.join(out, "bpftool.dump." + name)))]
try:
    cfg = dump("ferry_config")[0]["value"]
    import re
    hdr = open(os.path.join(os.environ["FO_TOP"], "maps", "ferry_maps.h")).read()
    abi = int(re.search(r"#define FERRY_ABI_VERSION (\d+)", hdr).group(1))
    if cfg["abi_version"] != abi:
        bad.append("ferry_config.abi_version %r" % cfg["abi_version"])
    names = sorted(e["value"]["name"] for e in dump("ferry_pred_meta") if e["value"]["name"])
    if names != ["canary", "main"]:
        bad.append("ferry_pred_meta names %r, expected canary and main" % names)
    ws = sorted(e["value"]["weight_configured"] for e in dump("ferry_pred_meta") if e["value"]["name"])
    if ws != [200000, 800000]:
        bad.append("ferry_pred_meta weight_configured %r, expected 200000 and 800000 ppm" % ws)
    deps = [e["value"]["deployment"] for e in dump("ferry_svc_meta")]
    if "default/iris" not in deps:
        bad.append("ferry_svc_meta deployments %r lack default/iris" % deps)
    links = sorted(e["value"]["ifname"] for e in dump("ferry_links"))
    if links != ["foct-n0", "foct-n1", "foct-n2", "foct-n3"]:
        bad.append("ferry_links ifnames %r" % links)
except (KeyError, IndexError, ValueError, TypeError) as e:
    bad.append("reading dumped values: %r" % e)
# Selection (docs/tables.md): the predictor stage of the one service holds
# main 80% and canary 20% (ppm); each predictor's table is pinned as
# tables/PREDICTOR_ID, an array of 8-byte cells: head (size, backend count),
# inputs digest, slots (4 x u16 backend index each), backend ids (2 x u32).
try:
    tables = sorted(os.listdir(os.path.join(pin, "tables")))
except OSError:
    tables = []
svcs = {e["value"]["id"]: e for e in dump("ferry_services") if e["value"]["id"]}
bes = {e["key"]: e["value"] for e in dump("ferry_backends") if e["value"]["state"]}
preds = {e["key"]: e["value"]["name"] for e in dump("ferry_pred_meta")}
if sorted(int(t) for t in tables) != sorted(preds):
    bad.append("tables/ holds %s, predictors have ids %s" % (tables, sorted(preds)))
sels = {e["key"]: e["value"] for e in dump("ferry_selectors")}
for sid in svcs:
    sel = sels.get(sid)
    if not sel:
        bad.append("ferry_selectors has no entry %d" % sid)
        continue
    w = {preds.get(p["predictor_id"], "?"): p["weight"] for p in sel["preds"][:sel["npredictors"]]}
    print("  ferry_selectors[%d]: %s" % (sid, w), file=sys.stderr)
    if w != {"main": 800000, "canary": 200000}:
        bad.append("ferry_selectors[%d] weights %r, expected main 800000, canary 200000" % (sid, w))
for t in tables:
    try:
        show = json.load(open(os.path.join(out, "bpftool.show.table." + t)))
        rows = json.load(open(os.path.join(out, "bpftool.dump.table." + t)))
    except ValueError as e:
        bad.append("tables/%s: bpftool output not JSON: %r" % (t, e))
        continue
    if show.get("type") != "array" or show.get("bytes_value") != 8:
        bad.append("tables/%s: %s, expected an array of 8-byte cells" % (t, {k: show.get(k) for k in ("type", "bytes_value")}))
        continue
    def raw(v):
        if isinstance(v, int):
            return v.to_bytes(8, "little")
        return bytes(int(x, 16) for x in v)
    cells = [raw(r.get("value")) for r in rows if "value" in r]
    size = int.from_bytes(cells[0][0:4], "little")
    n = int.from_bytes(cells[0][4:8], "little")
    if len(cells) != 2 + (size + 3) // 4 + (n + 1) // 2:
        bad.append("tables/%s: %d cells for %d slots and %d backends" % (t, len(cells), size, n))
        continue
    idcell = 2 + (size + 3) // 4
    ids = [int.from_bytes(cells[idcell + i // 2][4 * (i % 2):4 * (i % 2) + 4], "little") for i in range(n)]
    slots = [int.from_bytes(cells[2 + s // 4][2 * (s % 4):2 * (s % 4) + 2], "little") for s in range(size)]
    if any(i >= n for i in slots):
        bad.append("tables/%s: a slot names index >= %d" % (t, n))
        continue
    if any(i not in bes or bes[i]["predictor_id"] != int(t) for i in ids):
        bad.append("tables/%s: ids %s are not all backends of predictor %s" % (t, ids, t))
        continue
    counts = [slots.count(i) for i in range(n)]
    print("  tables/%s (%s): %d slots, %d backends, %s each" % (t, preds.get(int(t)), size, n, counts), file=sys.stderr)
    if n and max(counts) - min(counts) > 1:
        bad.append("tables/%s: uneven split %s" % (t, counts))
for b in bad:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

test_reset() {
	local i left=""
	fe_loadgen_stop "$HOLD_PID"
	fe_loadgen_stop "$TRICKLE_PID"
	fe_ferryd_stop TERM || why "ferryd did not stop" || return 1
	local tcx_ids="" l
	for l in "$FE_PIN"/links/*; do
		[ -e "$l" ] || continue
		tcx_ids+=" $(bpftool -j link show pinned "$l" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
	done
	# The canary analysis' state file and a command queued while ferryd is down
	# (this suite's deployment has no ferry.io/canary: auto, so they are made by hand).
	local cstate cctl
	cstate="/run/ferry/$(echo "$FE_PIN" | tr / _).canary.json"
	cctl="/run/ferry/$(echo "$FE_PIN" | tr / _).canary-ctl"
	mkdir -p "$cctl" && echo '{"deployments": {}}' >"$cstate" && echo abort >"$cctl/default_iris" ||
		why "cannot make $cstate and $cctl/default_iris" || return 1
	expect_rc 0 reset reset --yes || why "reset --yes" || return 1
	grep_out reset '^ferry removed' || return 1
	if [ -e "$FE_PIN" ] && [ -n "$(ls -A "$FE_PIN")" ]; then
		left+=" pins: $(ls "$FE_PIN" | tr '\n' ' ')"
	fi
	ip -n "$FE_NODE" link show dev foct-n0 | grep -q 'xdp' && left+=" XDP on foct-n0"
	for i in 0 1 2 3; do
		[ -z "$(ip netns exec "$FE_NODE" tc filter show dev "foct-n$i" ingress)" ] ||
			left+=" tc ingress filters on foct-n$i"
		[ -z "$(ip netns exec "$FE_NODE" tc filter show dev "foct-n$i" egress)" ] ||
			left+=" tc egress filters on foct-n$i"
		ip netns exec "$FE_NODE" tc qdisc show dev "foct-n$i" | grep -q clsact &&
			left+=" clsact qdisc on foct-n$i"
	done
	# tcx links are invisible to tc (and to bpftool 7.1's 'net'): the ones pinned before
	# the reset must be gone from the kernel, not only their pins.
	for i in $tcx_ids; do
		bpftool link show id "$i" >/dev/null 2>&1 && left+=" tcx link $i"
	done
	[ -e "$(fo_status_file)" ] && left+=" status file $(fo_status_file)"
	[ -e "$cstate" ] && left+=" canary state file $cstate"
	[ -e "$cctl" ] && left+=" canary command directory $cctl"
	[ -z "$left" ] || why "reset --yes left:$left" || return 1
	# With nothing left, status fails (1) and a second reset is harmless.
	expect_rc 1 reset.status status || why "status after reset" || return 1
	expect_rc 0 reset.again reset --yes || why "a second reset --yes"
}

t help test_help
t status test_status
t services test_services
t flows test_flows
t flows_flush test_flows_flush
t latency test_latency
t top test_top
t config_errors test_config_errors
t trace test_trace
t drain test_drain
t weights_override test_weights_override
t ferryd_down test_ferryd_down
t sigterm_clean test_sigterm_clean
t weights_restart test_weights_restart
t sighup test_sighup
t override_vs_edit test_override_vs_edit
t weights_rollback test_weights_rollback
t weights_clear test_weights_clear
t weights_fast_vs_full test_weights_fast_vs_full
t exit_codes test_exit_codes
t bpftool_maps test_bpftool_maps
t reset test_reset
