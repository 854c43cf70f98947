# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# The weighted-split check shared by split_90_10 and split_50_50: two
# predictors (main with 2 backends, canary with 1), N new connections, the
# canary's observed share within 3 standard deviations of its weight.

fe_split_run() {
	local w_main=$1 w_canary=$2 n=${FE_SPLIT_CONNECTIONS:-2400}
	local vip=198.18.100.10:8000 out share
	fe_require_root
	fe_require_ferryd
	fe_topo_create 3
	fe_server 1 main-0 main
	fe_server 2 main-1 main
	fe_server 3 canary-0 canary
	fe_servers_wait || fe_fail "model servers did not start"
	fe_manifest iris "$vip" "main:$w_main:$(fe_backend_ip 1),$(fe_backend_ip 2)" \
		"canary:$w_canary:$(fe_backend_ip 3)"
	fe_ferryd_start
	fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
	out="$FE_RUN/split.json"
	fe_loadgen --target "$vip" --close --connections "$n" --concurrency 32 \
		--timeout "${FE_LOADGEN_TIMEOUT:-3}" >"$out" ||
		fe_fail "load client failed"
	fe_log "$(fe_json "$out" '{k: d[k] for k in ("requests", "errors", "backends", "duration_s")}')"
	[ "$(fe_json "$out" 'd["error_total"]')" -eq 0 ] ||
		fe_fail "failed requests: $(fe_json "$out" 'd["errors"]')"
	[ "$(fe_json "$out" 'd["ok"]')" -ge 2000 ] || fe_fail "fewer than 2,000 answered connections"
	# Both main backends take part (consistent hashing inside the predictor).
	[ "$(fe_json "$out" 'min(d["backends"].get(b, 0) for b in ("main-0", "main-1"))')" -gt 0 ] ||
		[ "$w_main" -eq 0 ] || fe_fail "a main backend got nothing: $(fe_json "$out" 'd["backends"]')"
	# ferryd's own count of the connections it placed, and its latency samples
	# (the kernel's view) must agree with what the client saw.
	if [ "$FE_LB" = ferry ]; then
		local p k c
		for p in main canary; do
			c=$(fe_json "$out" "d['predictors'].get('$p', 0)")
			k=$(fe_metric ferry_new_connections_total deployment_name=iris predictor_name=$p) ||
				fe_fail "ferryd's /metrics at $FE_METRICS does not answer"
			fe_log "$p: client saw $c connections, ferryd counted $k"
			# The kernel also counted the readiness probes made before the burst.
			if [ "$k" -lt "$c" ] || [ "$k" -gt $((c + 20)) ]; then
				fe_fail "ferry_new_connections_total{predictor_name=$p} is $k, the client saw $c"
			fi
			[ "$c" -eq 0 ] || [ "$(fe_metric ferry_request_duration_seconds_count \
				deployment_name=iris predictor_name=$p)" -gt 0 ] ||
				fe_fail "no kernel latency sample for predictor $p after $c requests"
		done
	fi
	[ "$FE_LB" = ferry ] && fe_metrics 2>/dev/null | grep -E '^ferry_(datapath_events|drops)_total' |
		grep -v ' 0$' | sed 's/^/  metrics: /' >&2
	share=$(fe_share_check "$out" canary "$(awk "BEGIN{print $w_canary/100}")")
	local rc=$?
	echo "$share" >&2
	[ $rc -eq 0 ] || fe_fail "$share"
	fe_pass "$share"
}
