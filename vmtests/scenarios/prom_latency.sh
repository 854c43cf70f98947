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

cat >"$FE_RUN/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: ['$FE_METRICS']
EOF
ip netns exec "$FE_NODE" prometheus --config.file="$FE_RUN/prometheus.yml" \
	--storage.tsdb.path="$FE_RUN/tsdb" --web.listen-address="$prom" \
	>"$FE_RUN/prometheus.log" 2>&1 &
FE_PIDS+=($!)

query() { # PROMQL: prints the JSON result
	fe_ns "$FE_NODE" curl -sf --max-time 5 "http://$prom/api/v1/query" --data-urlencode "query=$1"
}
prom_up() { [[ "$(query 'up{job="ferry"}' 2>/dev/null)" == *'"1"]'* ]]; }
fe_wait 30 prom_up || fe_fail "Prometheus does not scrape ferryd (see $FE_RUN/prometheus.log)"

# Keep-alive traffic: every exchange on a connection is one kernel sample. The
# reference client takes the response's arrival time from the kernel
# (SO_TIMESTAMPNS), so a busy machine's scheduling delays in the client do not
# count against ferry.
out="$FE_RUN/load.json"
fe_ns "$FE_CLIENT" "$FE_PY" "$FE_BIN/latclient.py" --target "$vip" --connections 16 \
	--duration 15 --interval 0.02 >"$out" || fe_fail "latency client failed"
[ "$(fe_json "$out" 'd["errors"]')" -eq 0 ] || fe_fail "failed requests: $(cat "$out")"
[ "$(fe_json "$out" 'min(v["n"] for v in d["predictors"].values()) >= 200 and len(d["predictors"]) == 2')" = True ] ||
	fe_fail "too few samples per predictor: $(cat "$out")"
sleep 3 # two more scrapes after the last request

# The live exposition, not just the renderer's unit test, must satisfy promtool's linter.
lint=$(fe_metrics | promtool check metrics 2>&1) || fe_fail "promtool check metrics on ferryd's /metrics: $lint"
[ -z "$lint" ] || fe_fail "promtool check metrics on ferryd's /metrics: $lint"

result=0
for pred in main canary; do
	for q in 0.5 0.99; do
		client=$(fe_json "$out" "d['predictors']['$pred']['p%d' % round($q * 100)]")
		resp=$(query "histogram_quantile($q, sum by (le) (ferry_request_duration_seconds_bucket{predictor_name=\"$pred\",deployment_name=\"lat\"}))") ||
			fe_fail "Prometheus query failed"
		kernel=$("$FE_PY" -c 'import json,sys; r=json.loads(sys.argv[1])["data"]["result"]; print(r[0]["value"][1] if r else "nan")' "$resp")
		verdict=$("$FE_PY" -c "
import math, sys
k, c = float('$kernel'), float('$client')
err = abs(k - c) / c if c > 0 and not math.isnan(k) else float('inf')
print('%.4f %s' % (err, 'ok' if err <= 0.05 else 'off'))")
		fe_log "$pred p$q: kernel (via Prometheus) ${kernel}s, client ${client}s, error ${verdict% *}"
		[ "${verdict#* }" = ok ] || result=1
	done
done
[ "$result" -eq 0 ] || fe_fail "kernel-measured quantiles are not within 5% of the client's"
fe_pass
