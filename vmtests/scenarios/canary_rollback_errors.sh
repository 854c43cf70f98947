#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# canary_rollback_errors: steps 10,25,50,100, 3 s windows, default thresholds
# (1% errors, 2 failed windows in a row). Once the rollout has started, the
# canary answers 10% of predictions with HTTP 503: it is rolled back to 0 for
# its error rate and new connections reach only main afterwards.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/canary.sh
. "$(dirname "$0")/../lib/canary.sh"
fe_canary_init canary_rollback_errors crerr
vip=$FE_CANARY_VIP
fe_canary_backends --delay-ms 5 --error-status 503
fe_canary_start 80 20 ferry.io/canary-steps=20,50,100 ferry.io/canary-interval=3s \
	ferry.io/canary-min-requests=30
fe_wait 5 fe_canary_at_step 1 || { fe_canary_show; fe_fail "the rollout did not start"; }
fe_canary_control canary '{"error_rate": 0.1}'
fe_canary_load
load=$FE_LAST_PID
fe_wait 25 fe_canary_is rolled-back || { fe_canary_show; fe_fail "the canary was not rolled back"; }
fe_loadgen_stop "$load"
fe_canary_show
reason=$(fe_canary_field "${FE_CANARY_FAILED}['reason']")
rate=$(fe_canary_field "'%.1f' % (100 * ${FE_CANARY_FAILED}['canary_error_rate'])")
[ "$reason" = error_rate ] || fe_fail "rolled back for $reason, not error_rate"
w=$(fe_canary_kernel_weight)
[ "$w" = 0.0 ] || fe_fail "the kernel holds the canary at $w%, want 0%"
fe_burst "$vip" 300 "$FE_RUN/after.json"
fe_only "$FE_RUN/after.json" main "after the rollback: "
[ "$(fe_metric ferry_canary_decisions_total deployment=default/iris decision=fail reason=error_rate)" -ge 2 ] ||
	fe_fail "ferry_canary_decisions_total{decision=fail,reason=error_rate} below 2"
fe_pass "rolled back for error_rate ($rate% 503s on the canary), then all to main"
