#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# canary_rollback_latency: steps 10,25,50,100, 3 s windows, canary-failures 1.
# At step 2 the canary's service time triples (10 ms -> 30 ms): the canary is
# rolled back to 0 within two windows (the one in which it slowed down and the
# next), new connections reach only main afterwards, and no request of a
# steady stream of new connections fails because of the rollback.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/canary.sh
. "$(dirname "$0")/../lib/canary.sh"
fe_canary_init canary_rollback_latency crlat
vip=$FE_CANARY_VIP
fe_canary_walk ferry.io/canary-failures=1
load=$FE_LAST_PID
fe_wait 30 fe_canary_at_step 2 || { fe_canary_show; fe_fail "the rollout did not reach step 2"; }
fe_canary_control canary '{"delay_ms": 30}'
changed=$(($(date +%s) / 3))
fe_wait 20 fe_canary_is rolled-back || { fe_canary_show; fe_fail "the canary was not rolled back"; }
fe_canary_show
# The window that decided: the last one judged, failed.
rb=$(fe_canary_field "${FE_CANARY_FAILED}['window']")
reason=$(fe_canary_field "${FE_CANARY_FAILED}['reason']")
ratio=$(fe_canary_field "'%.2f' % ${FE_CANARY_FAILED}['p50_ratio']")
[ $((rb - changed)) -le 1 ] ||
	fe_fail "rolled back in window $rb, $((rb - changed + 1)) windows after the slowdown (window $changed)"
case "$reason" in latency_*) ;; *) fe_fail "rolled back for $reason, not latency" ;; esac
w=$(fe_canary_kernel_weight)
[ "$w" = 0.0 ] || fe_fail "the kernel holds the canary at $w%, want 0%"
sleep 1
fe_loadgen_stop "$load"
fe_canary_load_ok "across the rollback"
fe_burst "$vip" 300 "$FE_RUN/after.json"
fe_only "$FE_RUN/after.json" main "after the rollback: "
grep -q "rolled-back step 2/4" "$FE_RUN/ferryd.log" || fe_fail "no rollback line in ferryd's log"
fe_pass "rolled back at step 2 for $reason (p50 x$ratio) $((rb - changed + 1)) window(s) after the slowdown, then all to main, 0 failed"
