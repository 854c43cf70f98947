#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# backend_lifecycle: one predictor, three backends, 30 held keep-alive
# connections spread over them. Backend main-2 becomes unready, then
# terminating, then is deleted from its EndpointSlice. At each step: no new
# connection goes to it, and every held connection keeps working on the
# backend it started on (while main-2 is unready or terminating, those on
# main-2 too; after the deletion, those on the other backends).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init backend_lifecycle blife
fe_require_root
fe_require_ferryd
vip=198.18.100.10:8000
b1=$(fe_backend_ip 1) b2=$(fe_backend_ip 2) b3=$(fe_backend_ip 3)
fe_topo_create 3
fe_server 1 main-0 main
fe_server 2 main-1 main
fe_server 3 main-2 main
fe_servers_wait || fe_fail "model servers did not start"
fe_manifest iris "$vip" "main:100:$b1,$b2,$b3"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

fe_burst "$vip" 300 "$FE_RUN/before.json"
[ "$(fe_json "$FE_RUN/before.json" 'd["backends"].get("main-2", 0)')" -gt 0 ] ||
	fe_fail "main-2 takes no connection to begin with"

# Holds connections until enough of them sit on main-2.
hold="$FE_RUN/hold.json"
fe_loadgen_bg "$hold" --target "$vip" --hold 30 --ready-file "$FE_RUN/hold.ready"
holder=$FE_LAST_PID
fe_wait 15 test -s "$FE_RUN/hold.ready" || fe_fail "held connections did not all answer"

step() { # step NAME MANIFEST-SPEC
	fe_manifest iris "$vip" "$2"
	sleep 1
	fe_burst "$vip" 300 "$FE_RUN/$1.json"
	fe_log "$1: new connections $(fe_json "$FE_RUN/$1.json" 'd["backends"]')"
	[ "$(fe_json "$FE_RUN/$1.json" 'd["error_total"]')" -eq 0 ] ||
		fe_fail "$1: new connections failed: $(fe_json "$FE_RUN/$1.json" 'd["errors"]')"
	[ "$(fe_json "$FE_RUN/$1.json" 'd["backends"].get("main-2", 0)')" -eq 0 ] ||
		fe_fail "$1: new connections still go to main-2: $(fe_json "$FE_RUN/$1.json" 'd["backends"]')"
	sleep 1
}
step unready "main:100:$b1,$b2,$b3@unready"
step terminating "main:100:$b1,$b2,$b3@terminating"
# Stop the held connections before the deletion to judge the drain phases alone.
fe_loadgen_stop "$holder"
[ -s "$hold" ] || fe_fail "hold client printed no summary"
fe_log "held: $(fe_json "$hold" '[c["backends"] for c in d["connections"]]')"
on_b3=$(fe_json "$hold" 'sum(1 for c in d["connections"] if c["backends"][:1] == ["main-2"])')
[ "$on_b3" -gt 0 ] || fe_fail "no held connection was on main-2: the check proves nothing"
bad=$(fe_json "$hold" '[c for c in d["connections"] if c["failures"] or len(c["backends"]) != 1 or c["reopened"]]')
[ "$bad" = "[]" ] || fe_fail "held connections broke or moved while main-2 drained: $bad"

# Deletion: held connections on the remaining backends keep going.
fe_loadgen_bg "$FE_RUN/hold2.json" --target "$vip" --hold 20 --ready-file "$FE_RUN/hold2.ready"
holder=$FE_LAST_PID
fe_wait 15 test -s "$FE_RUN/hold2.ready" || fe_fail "second set of held connections did not answer"
step deleted "main:100:$b1,$b2"
sleep 1
fe_loadgen_stop "$holder"
bad=$(fe_json "$FE_RUN/hold2.json" '[c for c in d["connections"] if c["failures"] or len(c["backends"]) != 1]')
[ "$bad" = "[]" ] || fe_fail "held connections broke after main-2 was deleted: $bad"
fe_pass "$on_b3 of 30 held connections on main-2 kept working while it was unready and terminating; no new connection reached it"
