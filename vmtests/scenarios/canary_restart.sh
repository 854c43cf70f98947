#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# canary_restart: a rollout at step 2 (or 3) of 10,25,50,100 survives a ferryd
# restart: while ferryd is down the kernel keeps the canary at that step's share
# (the weight is in the pinned ferry_pred_meta), and the new ferryd resumes at
# that step (the state file) and goes on to the next, without a new rollout.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/canary.sh
. "$(dirname "$0")/../lib/canary.sh"
fe_canary_init canary_restart crrst
fe_canary_walk ferry.io/canary-min-effect=1.3
load=$FE_LAST_PID
fe_wait 30 fe_canary_at_step 2 || { fe_canary_show; fe_fail "the rollout did not reach step 2"; }
# The stop lands at step 2, or at step 3 when a window closed while this script
# looked (a slow machine): either way the kernel must hold that step's share.
fe_ferryd_stop TERM || fe_fail "ferryd did not stop"
w=$(fe_canary_kernel_weight)
case "$w" in
25.0) held=2 ;;
50.0) held=3 ;;
*) fe_fail "with ferryd down the kernel holds the canary at $w%, want 25% (step 2) or 50% (step 3)" ;;
esac
sleep 2
fe_ferryd_start
s=$(fe_canary_field "d['state'] + ':' + str(d['step'])")
[ "$s" = "progressing:$held" ] ||
	fe_fail "after the restart the rollout is at $s, want progressing:$held (the kernel held $w%)"
next_step() {
	local s
	s=$(fe_canary_field "d['state'] + ':' + str(d['step'])")
	[ "$s" = "progressing:$((held + 1))" ] || [[ "$s" == promoted:* ]]
}
fe_wait 20 next_step || { fe_canary_show; fe_fail "the rollout did not go on from step $held"; }
fe_loadgen_stop "$load"
fe_canary_show
n=$(grep -c "a new rollout" "$FE_RUN/ferryd.log")
[ "$n" -eq 1 ] || fe_fail "$n rollouts started, want 1 (the restart must resume, not start over)"
fe_canary_load_ok "across the restart"
fe_pass "resumed at step $held (kernel at $w% while ferryd was down), then the next step; one rollout, 0 failed"
