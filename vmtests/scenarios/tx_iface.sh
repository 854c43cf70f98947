#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# tx_iface: XDP redirects forwarded packets itself wherever the egress takes
# XDP frames, found by ferryd or declared. Phase 1, by itself (Linux 6.3+,
# xdp-features): the client's end of the client-facing veth runs an XDP
# program, so ferryd puts its forward program on the node's end at XDP
# ("a veth whose peer runs XDP", in ferryctl status), and the backends' ends
# have GRO on (NAPI without XDP, Linux 5.13+), so the node's backend-facing
# veths report ndo-xmit: ferryd must put them in the pinned ferry_tx_ports
# with no flag. Phase 2, declared: `ferryd --xdp-tx-iface IF` on both
# backend-facing interfaces replaces detection: ferry_tx_ports holds exactly
# their ifindexes. In both, over a burst of new connections (all answered)
# the data plane's `xdp_handoff` event (XDP -> TC handoff, the path without
# a port) does not move, and `redirect` moves by at least the forwarded
# packets. On a kernel without xdp-features phase 1 only checks that the
# ports stay empty (the safe default) and that the handoff delivers.
#
# A veth drops frames redirected into it unless its peer polls with NAPI;
# here the GRO-on backends stand for NICs whose drivers take XDP_REDIRECT.
# The node resolves both backends' neighbours first: a packet to an
# unresolved one takes the handoff on purpose (bpf_redirect_neigh at TC).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init tx_iface txif
fe_require_root
fe_require_ferryd
vip=198.18.100.40:8000
n=300

fe_topo_create 2
for i in 1 2; do
	fe_ns "$(fe_backend_ns "$i")" ethtool -K "$(fe_backend_if "$i")" gro on >/dev/null 2>&1 ||
		fe_fail "ethtool -K $(fe_backend_if "$i") gro on failed"
done
fe_server 1 main-0 main
fe_server 2 main-1 main
fe_servers_wait || fe_fail "model servers did not start"
fe_manifest iris "$vip" "main:100:$(fe_backend_ip 1),$(fe_backend_ip 2)"

# The client runs XDP on its end (a pass program): the node's end takes XDP frames.
ip -n "$FE_CLIENT" link set dev "$FE_IF_CLIENT" xdp object "$FERRY_BUILD/bpf/floor.bpf.o" \
	program ferry_nop || fe_fail "cannot attach an XDP pass program to the client's veth"

ifindexes() { # interfaces...
	for i in "$@"; do ip -n "$FE_NODE" -o link show dev "$i" | cut -d: -f1; done | sort -n | xargs
}

tx_ports() {
	bpftool -j map dump pinned "$FE_PIN/ferry_tx_ports" |
		"$FE_PY" -c '
import json, sys
def u32(v):
    return v if isinstance(v, int) else int.from_bytes(bytes(int(x, 16) for x in v), "little")
rows = json.load(sys.stdin)
print(" ".join(str(k) for k in sorted(u32(r["key"]) for r in rows if u32(r["key"]) == u32(r["value"]))))
'
}

# Reachability, then a burst whose packets must all leave by XDP_REDIRECT.
burst_check() { # phase
	local out="$FE_RUN/burst-$1.json" h0 r0 f0 h1 r1 f1 msg
	for i in 1 2; do
		fe_ns "$FE_NODE" "$FE_PY" -c "import socket; socket.create_connection(('$(fe_backend_ip "$i")', 9000), 2).close()" ||
			fe_fail "node cannot reach backend $i"
	done
	h0=$(fe_metric ferry_datapath_events_total event=xdp_handoff) || fe_fail "no /metrics"
	r0=$(fe_metric ferry_datapath_events_total event=redirect)
	f0=$(fe_metric ferry_packets_total direction=forward)
	fe_burst "$vip" "$n" "$out"
	[ "$(fe_json "$out" 'd["error_total"]')" -eq 0 ] ||
		fe_fail "$1: failed requests: $(fe_json "$out" 'd["errors"]')"
	[ "$(fe_json "$out" 'd["ok"]')" -eq "$n" ] || fe_fail "$1: not every connection answered"
	[ "$(fe_json "$out" 'min(d["backends"].get(b, 0) for b in ("main-0", "main-1"))')" -gt 0 ] ||
		fe_fail "$1: a backend got nothing: $(fe_json "$out" 'd["backends"]')"
	h1=$(fe_metric ferry_datapath_events_total event=xdp_handoff) || fe_fail "no /metrics"
	r1=$(fe_metric ferry_datapath_events_total event=redirect)
	f1=$(fe_metric ferry_packets_total direction=forward)
	msg="$1: forwarded $((f1 - f0)) packets; redirect +$((r1 - r0)), xdp_handoff +$((h1 - h0))"
	fe_log "$msg"
	# Each connection forwards at least its SYN, ACK and request.
	[ $((f1 - f0)) -ge $((3 * n)) ] || fe_fail "$1: only $((f1 - f0)) forwarded packets for $n connections"
	if [ "${2:-}" = handoff-ok ]; then
		return 0
	fi
	[ "$h1" -eq "$h0" ] || fe_fail "$msg: packets took the XDP -> TC handoff"
	[ $((r1 - r0)) -ge $((f1 - f0)) ] || fe_fail "$msg: fewer redirects than forwarded packets"
}

if [ "$FE_LB" != ferry ]; then
	fe_ferryd_start
	fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
	out="$FE_RUN/burst.json"
	fe_burst "$vip" "$n" "$out"
	[ "$(fe_json "$out" 'd["ok"]')" -eq "$n" ] || fe_fail "not every connection answered"
	fe_pass "$n connections answered (stand-in: no data plane counters)"
fi
command -v bpftool >/dev/null || fe_fail "needs bpftool (make deps)"

# Phase 1: found by itself.
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
backend_side=$(ifindexes "$(fe_node_if 1)" "$(fe_node_if 2)")
nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "$FE_PIN" status \
	>"$FE_RUN/status.txt" 2>&1
fe_log "$(grep -E "^  $FE_IF_NODE_CLIENT " "$FE_RUN/status.txt")"
grep -qE "^  $FE_IF_NODE_CLIENT +xdp\(native\).*peer runs XDP" "$FE_RUN/status.txt" ||
	fe_fail "ferryctl status does not show $FE_IF_NODE_CLIENT at XDP because its peer runs XDP: $(grep -E "^  $FE_IF_NODE_CLIENT " "$FE_RUN/status.txt")"
if grep -q "reports no xdp-features" "$FE_RUN/ferryd.log"; then
	got=$(tx_ports) || fe_fail "cannot dump $FE_PIN/ferry_tx_ports"
	[ -z "$got" ] || fe_fail "no xdp-features, yet ferry_tx_ports holds [$got]"
	burst_check "found (no xdp-features: handoff)" handoff-ok
	fe_log "kernel without xdp-features: ferry_tx_ports stays empty, the handoff delivers"
else
	got=""
	for _ in $(seq 30); do
		got=$(tx_ports) || fe_fail "cannot dump $FE_PIN/ferry_tx_ports"
		[ -n "$(comm -13 <(tr ' ' '\n' <<<"$got" | sort) <(tr ' ' '\n' <<<"$backend_side" | sort))" ] || break
		sleep 0.1
	done
	fe_log "found by itself: ferry_tx_ports holds [$got]; backend-facing interfaces are [$backend_side]"
	[ -z "$(comm -13 <(tr ' ' '\n' <<<"$got" | sort) <(tr ' ' '\n' <<<"$backend_side" | sort))" ] ||
		fe_fail "ferry_tx_ports holds [$got] without flags; the backend-facing [$backend_side] report ndo-xmit"
	grep -qE "^  $(fe_node_if 1) .*tx port: xdp-features say ndo-xmit" "$FE_RUN/status.txt" ||
		fe_log "(status was read before the ports: $(grep -E "^  $(fe_node_if 1) " "$FE_RUN/status.txt"))"
	burst_check "found"
fi

# Phase 2: declared, replacing detection.
fe_ferryd_stop TERM || fe_fail "ferryd did not stop"
fe_ferryd_start --xdp-tx-iface "$(fe_node_if 1)" --xdp-tx-iface "$(fe_node_if 2)"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s after the restart"
got=$(tx_ports) || fe_fail "cannot dump $FE_PIN/ferry_tx_ports"
fe_log "declared: ferry_tx_ports holds [$got], the backend-facing interfaces are [$backend_side]"
[ "$got" = "$backend_side" ] ||
	fe_fail "ferry_tx_ports holds [$got], expected the --xdp-tx-iface ifindexes [$backend_side]"
burst_check "declared"
fe_pass "found by itself and declared: every forwarded packet left by XDP_REDIRECT"
