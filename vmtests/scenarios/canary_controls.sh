#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# canary_controls: the SRE's controls of a rollout (ferryctl canary --pause,
# --resume, --abort, --promote), with ferryd up and with it down. Controls
# given while ferryd is down all apply when it is back, in the order given:
# an --abort then a --pause leaves the rollout rolled back and the canary at
# 0% (ferryd kept only the last control: it resumed the rollout paused on its
# step, and the canary's share came back). No request fails throughout.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/canary.sh
. "$(dirname "$0")/../lib/canary.sh"
fe_canary_init canary_controls cctl
vip=$FE_CANARY_VIP
dep=$FE_CANARY_DEP
fe_canary_backends --delay-ms 10
# Windows long enough that no step is judged while the controls are checked.
fe_canary_start 90 10 ferry.io/canary-steps=25,50,100 ferry.io/canary-interval=60s \
	ferry.io/canary-min-requests=30
fe_canary_load
load=$FE_LAST_PID
state() { fe_canary_field "d['state'] + ':' + str(d['step'])"; }
state_is() { [ "$(state)" = "$1" ]; }
weight_is() { [ "$(fe_canary_kernel_weight)" = "$1" ]; }
fe_wait 10 state_is progressing:1 || fe_fail "the rollout did not start at step 1: $(state)"
fe_wait 5 weight_is 25.0 || fe_fail "the kernel holds the canary at $(fe_canary_kernel_weight)%, want 25%"

fe_canary_ctl canary "$dep" --pause >>"$FE_RUN/ctl.log" 2>&1 || fe_fail "--pause failed"
fe_wait 5 state_is paused:1 || fe_fail "--pause: the rollout is $(state), want paused:1"
weight_is 25.0 || fe_fail "--pause moved the canary to $(fe_canary_kernel_weight)%"
fe_canary_ctl canary "$dep" --resume >>"$FE_RUN/ctl.log" 2>&1 || fe_fail "--resume failed"
fe_wait 5 state_is progressing:1 || fe_fail "--resume: the rollout is $(state), want progressing:1"

fe_ferryd_stop TERM || fe_fail "ferryd did not stop"
fe_canary_ctl canary "$dep" --abort >>"$FE_RUN/ctl.log" 2>&1 || fe_fail "--abort failed with ferryd down"
weight_is 0.0 || fe_fail "--abort with ferryd down: the kernel holds the canary at $(fe_canary_kernel_weight)%, want 0% at once"
fe_canary_ctl canary "$dep" --pause >>"$FE_RUN/ctl.log" 2>&1 || fe_fail "--pause failed with ferryd down"
fe_ferryd_start
fe_wait 5 state_is rolled-back:1 ||
	fe_fail "after --abort then --pause with ferryd down, the rollout is $(state), want rolled-back:1"
sleep 2
weight_is 0.0 || fe_fail "after --abort then --pause, the kernel holds the canary at $(fe_canary_kernel_weight)%, want 0%"
fe_burst "$vip" 200 "$FE_RUN/aborted.json"
fe_only "$FE_RUN/aborted.json" main "after --abort then --pause: "
grep -q "canary command pause: nothing to do in state rolled-back" "$FE_RUN/ferryd.log" ||
	fe_fail "ferryd did not apply the queued --pause after the --abort"

fe_canary_ctl canary "$dep" --promote >>"$FE_RUN/ctl.log" 2>&1 || fe_fail "--promote failed"
fe_wait 5 weight_is 100.0 || fe_fail "--promote: the kernel holds the canary at $(fe_canary_kernel_weight)%, want 100%"
# ferryd takes the control at its next tick (1 s; later under the sanitizers).
promoted() { case "$(state)" in progressing:3 | promoted:3) return 0 ;; esac; return 1; }
fe_wait 15 promoted || fe_fail "--promote: the rollout is $(state), want the last step (3)"
fe_burst "$vip" 200 "$FE_RUN/promoted.json"
fe_only "$FE_RUN/promoted.json" canary "after --promote: "
fe_loadgen_stop "$load"
fe_canary_show
fe_canary_load_ok "through the controls"
ctl_dir="/run/ferry/$(echo "$FE_PIN" | tr / _).canary-ctl"
none_left() { [ -z "$(ls -A "$ctl_dir" 2>/dev/null)" ]; }
fe_wait 10 none_left || fe_fail "controls left unread: $(ls -A "$ctl_dir")"
fe_pass "pause, resume; --abort then --pause with ferryd down: rolled back, canary at 0%; --promote: 100%; 0 failed"
