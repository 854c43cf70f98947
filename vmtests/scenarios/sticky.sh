#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# sticky: 24 long-lived keep-alive connections are spread over main and canary
# (50/50). The manifest is rewritten to 0/100. Within 1 s every new connection
# goes to the canary, while every held connection keeps answering, from the
# backend it started on, without a failure or a reconnect.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init sticky stick
fe_require_root
fe_require_ferryd
vip=198.18.100.10:8000
fe_std_backends
fe_manifest iris "$vip" "main:50:$(fe_backend_ip 1),$(fe_backend_ip 2)" "canary:50:$(fe_backend_ip 3)"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

hold="$FE_RUN/hold.json"
fe_loadgen_bg "$hold" --target "$vip" --hold 24 --ready-file "$FE_RUN/hold.ready"
holder=$FE_LAST_PID
fe_wait 15 test -s "$FE_RUN/hold.ready" || fe_fail "held connections did not all answer"
sleep 1

fe_manifest iris "$vip" "main:0:$(fe_backend_ip 1),$(fe_backend_ip 2)" "canary:100:$(fe_backend_ip 3)"
sleep 1
fe_burst "$vip" 300 "$FE_RUN/after.json"
sleep 2 # two more rounds on every held connection after the change
fe_loadgen_stop "$holder"

fe_log "after the change: $(fe_json "$FE_RUN/after.json" 'd["backends"]')"
fe_only "$FE_RUN/after.json" canary "after 0/100: "
[ -s "$hold" ] || fe_fail "hold client printed no summary"
fe_log "held: $(fe_json "$hold" '[c["backends"] for c in d["connections"]]')"
bad=$(fe_json "$hold" '[c for c in d["connections"] if c["failures"] or len(c["backends"]) != 1 or c["reopened"]]')
[ "$bad" = "[]" ] || fe_fail "held connections broke or moved: $bad"
on_main=$(fe_json "$hold" 'sum(1 for c in d["connections"] if c["backends"][0].startswith("main"))')
rounds=$(fe_json "$hold" 'min(c["requests"] for c in d["connections"])')
[ "$on_main" -gt 0 ] || fe_fail "no held connection was on main: the check proves nothing"
[ "$rounds" -ge 4 ] || fe_fail "held connections made only $rounds requests"
fe_pass "24 held connections ($on_main on main) stayed put over $rounds requests each; new ones all to canary"
