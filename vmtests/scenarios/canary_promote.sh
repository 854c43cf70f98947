#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# canary_promote: ferry.io/canary: auto with steps 10,25,50,100 and 3 s
# windows; the canary serves like main. Under a steady stream of new
# connections the rollout walks 10 -> 25 -> 50 -> 100 and ends promoted, the
# kernel holds the canary at 100%, new connections all reach the canary, and
# no request fails. (min-effect 1.3: the one canary backend carries twice the
# per-backend load of main's two at 50%, and the stand-in servers are Python.)
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/canary.sh
. "$(dirname "$0")/../lib/canary.sh"
fe_canary_init canary_promote cpro
vip=$FE_CANARY_VIP
fe_canary_walk ferry.io/canary-min-effect=1.3
load=$FE_LAST_PID
seen=""
for _ in $(seq 1 120); do
	s=$(fe_canary_field "d['state'] + ':' + str(d['step'])") || s=""
	case "$s" in
	progressing:* | promoted:*) [[ " $seen " == *" $s "* ]] || seen="$seen $s" ;;
	rolled-back:*) break ;;
	esac
	[ "${s%%:*}" = promoted ] && break
	sleep 0.5
done
fe_loadgen_stop "$load"
fe_canary_show
[ "$seen" = " progressing:1 progressing:2 progressing:3 progressing:4 promoted:4" ] ||
	fe_fail "expected steps 1 2 3 4 then promoted, saw:$seen"
w=$(fe_canary_kernel_weight)
[ "$w" = 100.0 ] || fe_fail "the kernel holds the canary at $w%, want 100%"
fe_canary_load_ok "during the rollout"
fe_burst "$vip" 300 "$FE_RUN/after.json"
fe_only "$FE_RUN/after.json" canary "after promotion: "
[ "$(fe_metric ferry_canary_state deployment=default/iris state=promoted)" = 1 ] ||
	fe_fail "ferry_canary_state{state=promoted} is not 1"
# Where an SRE looks for why traffic left the manifest's 90/10: services,
# top and the metrics the share alert is excused by all name the canary's
# weight (they showed the configured 10% and no cause before).
fe_canary_ctl -j services >"$FE_RUN/services.json" || fe_fail "ferryctl -j services failed"
got=$(fe_json "$FE_RUN/services.json" \
	"' '.join(sorted('%s=%s' % (p['name'], p['weight_canary']) for p in d[0]['predictors']))")
[ "$got" = "canary=100.0 main=None" ] ||
	fe_fail "ferryctl services: weight_canary $got, want the canary at 100 and none on main"
fe_canary_ctl services | grep -q "canary .* CANARY 100.00%" ||
	fe_fail "ferryctl services does not mark the canary's weight: $(fe_canary_ctl services)"
fe_canary_ctl -j top --iterations 1 >"$FE_RUN/top.json" || fe_fail "ferryctl top failed"
got=$(fe_json "$FE_RUN/top.json" \
	"' '.join(sorted('%s=%s' % (p['name'], p['weight_pct']) for p in d['services'][0]['predictors']))")
[ "$got" = "canary=100.0 main=0.0" ] ||
	fe_fail "ferryctl top: WEIGHT $got, want main 0 and the canary 100"
[ "$(fe_metric ferry_predictor_weight_canary_active predictor_name=canary)" = 1 ] &&
	[ "$(fe_metric ferry_predictor_weight_canary predictor_name=canary)" = 1 ] &&
	[ "$(fe_metric ferry_predictor_weight_canary_active predictor_name=main)" = 0 ] ||
	fe_fail "ferry_predictor_weight_canary{,_active} do not show the promotion"
passes=$(fe_metric ferry_canary_decisions_total deployment=default/iris decision=pass)
[ "$passes" -ge 4 ] || fe_fail "ferry_canary_decisions_total{decision=pass} is $passes, want >= 4"
fe_pass "10 -> 25 -> 50 -> 100 -> promoted ($passes passing windows), kernel at 100%, 0 failed"
