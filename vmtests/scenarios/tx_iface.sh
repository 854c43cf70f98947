#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# tx_iface: `ferryd --xdp-tx-iface IF` declares the backend-facing interfaces
# safe for XDP_REDIRECT. ferryd must put exactly their ifindexes in the pinned
# ferry_tx_ports, and then XDP forwards every client packet by XDP_REDIRECT
# itself: over a burst of new connections (all answered) the data plane's
# `xdp_handoff` event (XDP -> TC handoff, the path without a declared port)
# does not move, and `redirect` moves by at least the forwarded packets.
#
# A veth drops frames redirected into it unless its peer polls with NAPI, so
# the backends' ends get GRO on (NAPI without XDP, Linux 5.13+): here they
# stand for NICs whose drivers take XDP_REDIRECT. Without ferryd's declaration
# the same burst goes through the handoff (the other scenarios). The node
# resolves both backends' neighbours first: a packet to an unresolved one
# takes the handoff on purpose (bpf_redirect_neigh at TC resolves it).
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
fe_ferryd_start --xdp-tx-iface "$(fe_node_if 1)" --xdp-tx-iface "$(fe_node_if 2)"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
for i in 1 2; do
	fe_ns "$FE_NODE" "$FE_PY" -c "import socket; socket.create_connection(('$(fe_backend_ip "$i")', 9000), 2).close()" ||
		fe_fail "node cannot reach backend $i"
done

if [ "$FE_LB" = ferry ]; then
	command -v bpftool >/dev/null || fe_fail "needs bpftool (make deps)"
	want=$(for i in 1 2; do ip -n "$FE_NODE" -o link show dev "$(fe_node_if "$i")" | cut -d: -f1
	done | sort -n | xargs)
	got=$(bpftool -j map dump pinned "$FE_PIN/ferry_tx_ports" |
		"$FE_PY" -c '
import json, sys
def u32(v):
    return v if isinstance(v, int) else int.from_bytes(bytes(int(x, 16) for x in v), "little")
rows = json.load(sys.stdin)
print(" ".join(str(k) for k in sorted(u32(r["key"]) for r in rows if u32(r["key"]) == u32(r["value"]))))
') || fe_fail "cannot dump $FE_PIN/ferry_tx_ports"
	fe_log "ferry_tx_ports holds ifindexes [$got], the backend-facing interfaces are [$want]"
	{ [ -n "$want" ] && [ "$got" = "$want" ]; } ||
		fe_fail "ferry_tx_ports holds [$got], expected the --xdp-tx-iface ifindexes [$want]"
	h0=$(fe_metric ferry_datapath_events_total event=xdp_handoff) || fe_fail "no /metrics"
	r0=$(fe_metric ferry_datapath_events_total event=redirect)
	f0=$(fe_metric ferry_packets_total direction=forward)
fi

out="$FE_RUN/burst.json"
fe_burst "$vip" "$n" "$out"
[ "$(fe_json "$out" 'd["error_total"]')" -eq 0 ] ||
	fe_fail "failed requests: $(fe_json "$out" 'd["errors"]')"
[ "$(fe_json "$out" 'd["ok"]')" -eq "$n" ] || fe_fail "not every connection answered"
[ "$(fe_json "$out" 'min(d["backends"].get(b, 0) for b in ("main-0", "main-1"))')" -gt 0 ] ||
	fe_fail "a backend got nothing: $(fe_json "$out" 'd["backends"]')"
[ "$FE_LB" = ferry ] || fe_pass "$n connections answered (stand-in: no data plane counters)"

h1=$(fe_metric ferry_datapath_events_total event=xdp_handoff) || fe_fail "no /metrics"
r1=$(fe_metric ferry_datapath_events_total event=redirect)
f1=$(fe_metric ferry_packets_total direction=forward)
msg="forwarded $((f1 - f0)) packets; redirect +$((r1 - r0)), xdp_handoff +$((h1 - h0))"
fe_log "$msg"
# Each connection forwards at least its SYN, ACK and request.
[ $((f1 - f0)) -ge $((3 * n)) ] || fe_fail "only $((f1 - f0)) forwarded packets for $n connections"
[ "$h1" -eq "$h0" ] || fe_fail "$msg: packets took the XDP -> TC handoff despite --xdp-tx-iface"
[ $((r1 - r0)) -ge $((f1 - f0)) ] || fe_fail "$msg: fewer redirects than forwarded packets"
fe_pass "$msg"
