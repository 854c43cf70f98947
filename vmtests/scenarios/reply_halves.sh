#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# reply_halves: a flow's reply half lost under real traffic (the two LRU maps
# evict a flow's halves independently) is rebuilt by the reply itself, through
# the backend's VIP hint (ferry_be_vips; docs/datapath.md, "One logical flow,
# two halves"). 16 keep-alive connections to backends that take 200 ms per
# request, so that a request is nearly always in flight; every reply half is
# deleted five times (bpftool, as an eviction would), without pausing the
# client: each response then reaches the reply hook with no reply half.
# Checked: no connection broke or moved, the node counted the rebuilds
# (flow_restored), and the reply halves are back. Before the hint only the
# client's next packet rebuilt a reply half, after the response had left with
# the backend's address: the client's stack answered it with a RST.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init reply_halves rhalf
fe_require_root
fe_require_ferryd
[ "$FE_LB" = iptables ] && fe_skip "deletes ferry's pinned reply halves (ferry only)"
command -v bpftool >/dev/null || fe_fail "needs bpftool (make deps)"

vip=198.18.100.10:8000
n=16
fe_std_backends --delay-ms 200
fe_manifest iris "$vip" "main:50:$(fe_backend_ip 1),$(fe_backend_ip 2)" "canary:50:$(fe_backend_ip 3)"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

hold="$FE_RUN/hold.json"
fe_loadgen_bg "$hold" --target "$vip" --hold "$n" --hold-interval 0.01 --timeout 10 \
	--ready-file "$FE_RUN/hold.ready"
holder=$FE_LAST_PID
fe_wait 15 test -s "$FE_RUN/hold.ready" || fe_fail "held connections did not all answer"
sleep 1

# Deletes every entry of the pinned reply-half map and adds the count to
# $deleted. Called directly, not in $(...): fe_fail must end the scenario.
drop_reply_halves() {
	local map="$FE_PIN/ferry_rflows" keys k count=0
	keys=$(bpftool -j map dump pinned "$map" | "$FE_PY" -c '
import json, sys
for e in json.load(sys.stdin):
    print(" ".join(b[2:] if b.startswith("0x") else b for b in e["key"]))') ||
		fe_fail "cannot dump $map"
	while read -r k; do
		[ -n "$k" ] || continue
		# shellcheck disable=SC2086 # the key is a list of hex bytes
		bpftool map delete pinned "$map" key hex $k 2>/dev/null && count=$((count + 1))
	done <<<"$keys"
	fe_log "round $1: deleted $count reply halves"
	deleted=$((deleted + count))
}

restored0=$(fe_metric ferry_datapath_events_total event=flow_restored) || fe_fail "no /metrics"
deleted=0
for round in 1 2 3 4 5; do
	drop_reply_halves "$round"
	sleep 1
done
sleep 1
restored1=$(fe_metric ferry_datapath_events_total event=flow_restored) || fe_fail "no /metrics"
restored=$((restored1 - restored0))
back=$(bpftool -j map dump pinned "$FE_PIN/ferry_rflows" |
	"$FE_PY" -c 'import json, sys; print(len(json.load(sys.stdin)))') ||
	fe_fail "cannot dump $FE_PIN/ferry_rflows"
fe_loadgen_stop "$holder"

[ -s "$hold" ] || fe_fail "hold client printed no summary"
fe_log "held: $(fe_json "$hold" '[c["backends"] for c in d["connections"]]')"
bad=$(fe_json "$hold" '[{k: c[k] for k in ("id", "backends", "failures", "errors", "reopened")} for c in d["connections"] if c["failures"] or len(c["backends"]) != 1 or c["reopened"]]')
rounds=$(fe_json "$hold" 'min(c["requests"] for c in d["connections"])')
[ "$bad" = "[]" ] || fe_fail "held connections broke or moved after their reply halves were lost: $bad"
[ "$deleted" -ge $((5 * n)) ] ||
	fe_fail "deleted $deleted reply halves in five rounds, expected the $n held ones each time"
[ "$restored" -ge $((5 * n)) ] ||
	fe_fail "the node counted $restored rebuilt halves (flow_restored) for $deleted deleted reply halves"
[ "$back" -ge "$n" ] || fe_fail "$back reply halves after the last round, expected the $n held connections'"
[ "$rounds" -ge 10 ] || fe_fail "held connections made only $rounds requests"
fe_pass "$n held connections lost all their reply halves five times ($deleted deleted, $restored rebuilt by their replies) and kept their backends over $rounds requests each"
