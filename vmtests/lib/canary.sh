# SPDX-License-Identifier: GPL-2.0-only
# Helpers for the canary_* scenarios (docs/canary.md): a deployment iris with
# main (2 backends) and canary (1 backend) whose delay and error rate are
# changed while they run (model_server.py --control), ferry.io/canary
# annotations, and reads of the canary state through ferryctl canary -j.
# shellcheck shell=bash

FE_CANARY_VIP=198.18.100.10:8000
FE_CANARY_DEP=default/iris
# In fe_canary_field: the last window judged a failure.
# shellcheck disable=SC2034 # read by the scenarios
FE_CANARY_FAILED="[w for w in d['windows'] if w['verdict'] == 'fail'][-1]"

# fe_canary_init SCENARIO TAG: fe_init, root and ferryd required, and no
# state file of an earlier run to resume.
fe_canary_init() {
	fe_init "$1" "$2"
	fe_require_root
	fe_require_ferryd
	fe_canary_forget
}

# fe_canary_backends [model_server args for all]: main-0, main-1, canary-0 with control files.
fe_canary_backends() {
	fe_topo_create 3
	echo '{}' >"$FE_RUN/ctl-main.json"
	echo '{}' >"$FE_RUN/ctl-canary.json"
	fe_server 1 main-0 main --control "$FE_RUN/ctl-main.json" "$@"
	fe_server 2 main-1 main --control "$FE_RUN/ctl-main.json" "$@"
	fe_server 3 canary-0 canary --control "$FE_RUN/ctl-canary.json" "$@"
	fe_servers_wait || fe_fail "model servers did not start"
}

# fe_canary_control main|canary JSON: a backend's delay_ms / error_rate from now on.
fe_canary_control() {
	echo "$2" >"$FE_RUN/ctl-$1.json.tmp" && mv "$FE_RUN/ctl-$1.json.tmp" "$FE_RUN/ctl-$1.json"
	fe_log "backend $1: $2"
}

# fe_canary_manifest MAIN% CANARY% ANNOTATION=VALUE...: iris with ferry.io/canary: auto.
fe_canary_manifest() {
	local mw=$1 cw=$2 args=()
	shift 2
	args=(--annotation ferry.io/canary=auto)
	for a in "$@"; do args+=(--annotation "$a"); done
	fe_manifest iris "$FE_CANARY_VIP" "main:$mw:$(fe_backend_ip 1),$(fe_backend_ip 2)" \
		"canary:$cw:$(fe_backend_ip 3)" -- "${args[@]}"
}

# fe_canary_start MAIN% CANARY% ANNOTATION=VALUE...: that manifest, ferryd
# started, and the VIP answering.
fe_canary_start() {
	fe_canary_manifest "$@"
	fe_ferryd_start
	fe_wait 10 fe_vip_ok "$FE_CANARY_VIP" || fe_fail "VIP $FE_CANARY_VIP does not answer within 10 s"
}

# fe_canary_load: a steady stream of new connections to the VIP in the
# background, JSON to $FE_RUN/load.json; pid in FE_LAST_PID.
fe_canary_load() {
	fe_loadgen_bg "$FE_RUN/load.json" --target "$FE_CANARY_VIP" --close --rate 150 \
		--concurrency 16 --timeout 2
}

# fe_canary_walk ANNOTATION=VALUE...: the rollout canary_promote, canary_restart
# and canary_rollback_latency share: backends answering in 10 ms, 90/10 with
# steps 10,25,50,100 in 3 s windows of at least 30 requests (and the
# annotations given), ferryd serving it, and the load running (FE_LAST_PID).
fe_canary_walk() {
	fe_canary_backends --delay-ms 10
	fe_canary_start 90 10 ferry.io/canary-steps=10,25,50,100 ferry.io/canary-interval=3s \
		ferry.io/canary-min-requests=30 "$@"
	fe_canary_load
}

# fe_canary_load_ok WHEN: no request of that (stopped) load failed.
fe_canary_load_ok() {
	[ "$(fe_json "$FE_RUN/load.json" 'd["error_total"]')" -eq 0 ] ||
		fe_fail "requests failed $1: $(fe_json "$FE_RUN/load.json" 'd["errors"]')"
}

# ferryctl on the node's pins, or on FE_CANARY_PIN's (another node's) when set.
fe_canary_ctl() {
	nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "${FE_CANARY_PIN:-$FE_PIN}" "$@"
}

# fe_canary_field EXPR: a Python expression over d, the deployment's ferryctl canary -j object.
fe_canary_field() {
	fe_canary_ctl -j canary "$FE_CANARY_DEP" >"$FE_RUN/canary.json" 2>/dev/null || return 1
	fe_json "$FE_RUN/canary.json" "(lambda d: $1)(d['$FE_CANARY_DEP'])"
}

fe_canary_is() { [ "$(fe_canary_field "d['state']")" = "$1" ]; }
fe_canary_at_step() {
	[ "$(fe_canary_field "d['state'] + ':' + str(d['step'])")" = "progressing:$1" ]
}

# fe_canary_kernel_weight [PIN]: the canary's weight in the kernel (percent,
# canary override), or None; PIN: another node's pin root.
fe_canary_kernel_weight() {
	FE_CANARY_PIN=${1:-$FE_PIN} \
		fe_canary_field "[k['canary_override'] for k in d['kernel'] if k['predictor'] == 'canary'][0]"
}

# Log the rollout (ferryctl canary, the table) into the run's log for a failure's report.
fe_canary_show() {
	fe_canary_ctl canary "$FE_CANARY_DEP" >>"$FE_RUN/canary.log" 2>&1
	tail -n 12 "$FE_RUN/canary.log" >&2
}

# A state file of an earlier run of this scenario would be resumed: remove it.
fe_canary_forget() {
	fe_status_files_rm "$FE_PIN"
}
