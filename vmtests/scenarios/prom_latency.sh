#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# prom_latency: the kernel's per-model latency, end to end through Prometheus.
# Two predictors answer with injected service times (main 5 ms, canary 20 ms);
# a real Prometheus server (Debian's) scrapes ferryd; the p50 and p99 that
# histogram_quantile() returns through Prometheus's HTTP API for each
# predictor are within 5% of what the client measured for the same requests.
#
# The exported buckets are set finer than the defaults (--latency-buckets,
# 2% apart from 1 ms to 100 ms): with Seldon's default boundaries (5 ms,
# 10 ms, ...) Prometheus's own interpolation between boundaries, not ferry,
# would dominate the error.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/prom.sh
. "$(dirname "$0")/../lib/prom.sh"
fe_init prom_latency pl
fe_require_root
fe_require_ferryd
command -v prometheus >/dev/null || fe_skip "prometheus not installed (make deps)"

vip=198.18.100.20:8000
prom=127.0.0.1:9391
fe_topo_create 2
fe_server 1 main-0 main --delay-ms 5
fe_server 2 canary-0 canary --delay-ms 20
fe_servers_wait || fe_fail "model servers did not start"
fe_manifest lat "$vip" "main:50:$(fe_backend_ip 1)" "canary:50:$(fe_backend_ip 2)"

buckets=$("$FE_PY" -c 'print(",".join("%.6g" % (0.001 * 1.02 ** k) for k in range(0, 233)))')
fe_ferryd_start --latency-buckets "$buckets"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

fe_prom_start "$prom" ""

# Keep-alive traffic, response times from the kernel (fe_prom_latclient).
out="$FE_RUN/load.json"
fe_prom_latclient "$vip" 2
sleep 5 # two more scrapes after the last request

# ferryd's flow GC (every 10 s) publishes how full the connection table is;
# its first pass comes after the client's first connections, so it counts them.
gc_reported() { [ "$(fe_metric ferry_flow_capacity table=confirmed)" -gt 0 ]; }
fe_wait 15 gc_reported || fe_fail "no ferry_flow_capacity 15 s after the traffic: the flow GC's figures are not exported"
entries=$(fe_metric ferry_flow_entries table=confirmed)
[ "$entries" -ge 1 ] || fe_fail "ferry_flow_entries{table=\"confirmed\"} is $entries after the client's connections"
fe_log "flow table: $entries confirmed connections of $(fe_metric ferry_flow_capacity table=confirmed), last GC pass $(fe_metric ferry_flow_gc_duration_seconds) s"

# The live exposition, not just the renderer's unit test, must satisfy promtool's linter.
lint=$(fe_metrics | promtool check metrics 2>&1) || fe_fail "promtool check metrics on ferryd's /metrics: $lint"
[ -z "$lint" ] || fe_fail "promtool check metrics on ferryd's /metrics: $lint"

result=0
for pred in main canary; do
	for q in 0.5 0.99; do
		client=$(fe_json "$out" "d['predictors']['$pred']['p%d' % round($q * 100)]")
		fe_prom_near "histogram_quantile($q, sum by (le) (ferry_request_duration_seconds_bucket{predictor_name=\"$pred\",deployment_name=\"lat\"}))" "$client" "$q" "$pred" ||
			result=1
		fe_log "$pred p$q: kernel (via Prometheus) ${FE_PROM_VALUE}s, client ${client}s, error $FE_PROM_ERR, client's rank of it $FE_PROM_RANK"
	done
done
[ "$result" -eq 0 ] || fe_fail "kernel-measured quantiles are not within 5% of the client's"
fe_pass
