#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# syn_flood: flow state an attacker cannot evict. 30 keep-alive connections
# are opened through the VIP (50/50 between main and canary), then sit idle
# while spoofed SYNs from random sources (10.99.0.0/16, random ports, valid
# checksums, so backends answer them) hit the VIP for 5 s at the highest rate
# this machine makes (bench/syn_flood.c: live frames injected on the client's
# veth, or a packet socket there where the kernel refuses live frames), and
# the weights change in the middle of the flood (a manifest edit to 70/30).
# Afterwards every held connection still works, on the backend it had;
# new legitimate connections made during the flood all succeed (their share is
# reported); new connections after it follow 70/30. Reports the flood's rate,
# the flow tables' fill and how many times the SYNs could have filled them.
# The rate guard is set to 40,000 new flows per CPU and second, under what
# this machine's flood makes, so that the flood always crosses it: legitimate
# clients turned away by it must get in on a retransmission (before, a client
# turned away once was turned away at every retransmission).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init syn_flood synfl
fe_require_root
fe_require_ferryd
[ "$FE_LB" = iptables ] && fe_skip "reads ferry's flow tables (ferry only)"
flood_bin="$FERRY_BUILD/bench/syn_flood"
[ -x "$flood_bin" ] || fe_skip "$flood_bin not built (make all)"
vip=198.18.100.10:8000
m="$(fe_backend_ip 1),$(fe_backend_ip 2)"
c="$(fe_backend_ip 3)"
flood_s=5
ctl() { nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "$FE_PIN" "$@"; }
# The flow maps' fill, from ferryctl status: every map with "flow" in its name.
flow_fill() {
	ctl -j status >"$FE_RUN/status-$1.json" 2>/dev/null || return 1
	fe_json "$FE_RUN/status-$1.json" '{m["name"]: "%d/%d" % (m["entries"], m["max_entries"]) for m in d["maps"] if "flow" in m["name"]}'
}

fe_std_backends
fe_manifest iris "$vip" "main:50:$m" "canary:50:$c"
guard=40000
fe_ferryd_start --new-flow-rate "$guard"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

# Idle during the flood: one request at once, the next 15 s later.
hold="$FE_RUN/hold.json"
fe_loadgen_bg "$hold" --target "$vip" --hold 30 --hold-interval 15 --timeout 5 \
	--ready-file "$FE_RUN/hold.ready"
holder=$FE_LAST_PID
fe_wait 15 test -s "$FE_RUN/hold.ready" || fe_fail "held connections did not all answer"
ready_at=$(date +%s)
fe_log "30 held connections open; flows before the flood: $(flow_fill before)"

# Legitimate clients keep connecting during the flood (and a little around it). Their
# timeout (5 s) lets a SYN be retransmitted twice (at 1 s and 3 s), as every real client's
# does and more: Linux gives up on a connect after six, and gRPC's default deadline is 20 s.
# With 3 s a client had one retransmission, and one of 285 timed out in CI's sanitizer
# pass, where a slowed machine makes fewer, later attempts (alone, 288 of 288 in each of
# four runs).
during="$FE_RUN/during.json"
fe_loadgen_bg "$during" --target "$vip" --close --rate 40 --concurrency 8 --timeout 5 \
	--duration $((flood_s + 2))
during_pid=$FE_LAST_PID
sleep 0.5

# The flood's frames leave the client's veth as XDP frames; a veth delivers those only
# to a peer that runs XDP or has GRO on. ferryd puts a veth whose peer runs no XDP at TC,
# so the node's side gets GRO, as a NIC has it: every flood frame then reaches ferry.
fe_ns "$FE_NODE" ethtool -K "$FE_IF_NODE_CLIENT" gro on >/dev/null 2>&1 ||
	fe_fail "ethtool -K $FE_IF_NODE_CLIENT gro on failed"
seen_before=$(fe_metric ferry_datapath_events_total event=embryonic_new) || fe_fail "no /metrics"
skipped_before=$(fe_metric ferry_datapath_events_total event=rate_skipped) || fe_fail "no /metrics"
node_mac=$(ip -n "$FE_NODE" -j link show "$FE_IF_NODE_CLIENT" |
	"$FE_PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["address"])')
ip netns exec "$FE_CLIENT" "$flood_bin" --iface "$FE_IF_CLIENT" --dst-mac "$node_mac" \
	--src-net 10.99.0.0 --dst "${vip%:*}" --dport "${vip##*:}" --seconds "$flood_s" \
	>"$FE_RUN/flood.json" 2>"$FE_RUN/flood.log" &
flood_pid=$!
FE_PIDS+=("$flood_pid")
sleep "$(echo "$flood_s / 2" | bc -l)"
fe_log "mid-flood: weights 50/50 -> 70/30 (manifest edit); flows: $(flow_fill mid)"
fe_manifest iris "$vip" "main:70:$m" "canary:30:$c"
wait "$flood_pid" || fe_fail "syn_flood failed: $(tail -n 3 "$FE_RUN/flood.log")"
fill_after=$(flow_fill after)
fe_log "flood: $(cat "$FE_RUN/flood.json"); flows right after: $fill_after"
wait "$during_pid"

# Two more rounds on every held connection, then stop.
while [ $(($(date +%s) - ready_at)) -lt 17 ]; do sleep 0.5; done
fe_loadgen_stop "$holder"
fe_burst "$vip" 600 "$FE_RUN/after.json"

sent=$(fe_json "$FE_RUN/flood.json" 'd["sent"]')
pps=$(fe_json "$FE_RUN/flood.json" 'int(d["pps"])')
max_flows=$(fe_json "$FE_RUN/status-after.json" 'max([m["max_entries"] for m in d["maps"] if m["name"] == "ferry_flows"] or [0])')
[ "$max_flows" -gt 0 ] || fe_fail "ferryctl status lists no ferry_flows"
# What ferry saw of it: a flood that never reached the data plane proves nothing. It
# must have been more new flows than the confirmed table holds (a veth drops what its
# ring cannot take, so ferry sees a share of what was sent).
seen=$(($(fe_metric ferry_datapath_events_total event=embryonic_new) - seen_before))
skipped=$(($(fe_metric ferry_datapath_events_total event=rate_skipped) - skipped_before))
[ $((seen + skipped)) -gt "$max_flows" ] ||
	fe_fail "the flood hardly reached ferry: $sent SYNs sent, $seen embryonic flows made and $skipped past the rate guard, fewer than ferry_flows' $max_flows entries"
[ "$skipped" -gt 0 ] ||
	fe_fail "the flood never crossed the rate guard (--new-flow-rate $guard): $seen embryonic flows made, none turned away"
fills=$(echo "scale=1; $sent / $max_flows" | bc)
problems=()
[ -s "$hold" ] || fe_fail "hold client printed no summary"
fe_log "held: $(fe_json "$hold" '[c["backends"] for c in d["connections"]]')"
broken=$(fe_json "$hold" 'sum(1 for c in d["connections"] if c["failures"] or len(c["backends"]) != 1 or c["reopened"])')
bad=$(fe_json "$hold" '[{k: c[k] for k in ("id", "backends", "errors", "reopened")} for c in d["connections"] if c["failures"] or len(c["backends"]) != 1 or c["reopened"]]')
rounds=$(fe_json "$hold" 'min(c["requests"] for c in d["connections"])')
on_canary=$(fe_json "$hold" 'sum(1 for c in d["connections"] if c["backends"] and c["backends"][0].startswith("canary"))')
[ "$rounds" -ge 2 ] || fe_fail "held connections made only $rounds requests: none after the flood"
[ "$broken" -eq 0 ] || problems+=("$broken of 30 held connections broke or moved: $bad")
ok=$(fe_json "$during" 'd["ok"]')
total=$(fe_json "$during" 'd["requests"]')
[ "$total" -gt 0 ] || fe_fail "no legitimate connection was attempted during the flood"
share_ok="$ok/$total new connections during the flood answered"
[ "$(fe_json "$during" 'd["error_total"]')" -eq 0 ] ||
	problems+=("$share_ok; failures: $(fe_json "$during" 'd["errors"]')")
[ "$(fe_json "$FE_RUN/after.json" 'd["error_total"]')" -eq 0 ] ||
	problems+=("new connections after the flood failed: $(fe_json "$FE_RUN/after.json" 'd["errors"]')")
if ! share=$(fe_share_check "$FE_RUN/after.json" canary 0.30); then
	problems+=("after the flood the split is not the new 70/30: $share")
fi
summary="flood $pps SYN/s for ${flood_s} s ($sent SYNs, $fills times ferry_flows' $max_flows entries; ferry made $seen embryonic flows, $skipped past the rate guard of $guard per CPU and second); flows right after: $fill_after; $share_ok; held: $((30 - broken))/30 kept their backends ($on_canary on canary) over $rounds requests"
fe_log "$summary"
[ ${#problems[@]} -eq 0 ] || fe_fail "$(printf '%s; ' "${problems[@]}")($summary)"
fe_pass "$summary; after: $share"
