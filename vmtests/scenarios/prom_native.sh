#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# prom_native: exact quantiles by default, through Prometheus native histograms.
# Four predictors answer with injected service times, two on Seldon's classic
# boundaries (5 ms, 25 ms) and two between them (7.3 ms, 13.7 ms): the
# medians of log-normal service times (shape 0.2, a p99 about 1.6x the
# median, as models' times spread). With a fixed delay the slowest 1% of
# requests is only the machine's scheduling noise, so thin that neighbouring
# samples there were 10-25% apart (the client's samples at ranks 98.5% and
# 99.5% measured 10.2 and 13.0 ms for a p99 of 10.5 ms): no histogram, however
# exact its counts, places a 99th percentile within 5% in such a gap. ferryd runs
# with DEFAULT flags (Seldon's coarse `le` list); Debian's Prometheus 2.42 with
# --enable-feature=native-histograms asks for the protobuf exposition and
# ingests ferry's schema-4 native histograms. histogram_quantile(0.5|0.99,
# rate(ferry_request_duration_seconds[1m])) per predictor must be within 5% of
# what the client measured for the same requests (or, where the client's own
# samples are too sparse for that, within 0.25 points of the quantile by the
# client's rank: fe_prom_near). (With the classic buckets
# alone, p50 at 5 ms and 25 ms reads about 7.5 ms and 37.5 ms: issue 17.)
# The shipped recording rules (deploy/prometheus/rules.yml) are loaded too:
# their latency quantiles take the native branch here and must agree as well
# (promtool 2.42 cannot feed native series to `promtool test rules`).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
# shellcheck source=SCRIPTDIR/../lib/prom.sh
. "$(dirname "$0")/../lib/prom.sh"
fe_init prom_native pn
fe_require_root
fe_require_ferryd
[ "$FE_LB" = iptables ] && fe_skip "measures ferryd's own exposition"
command -v prometheus >/dev/null || fe_skip "prometheus not installed (make deps)"

vip=198.18.100.21:8000
prom=127.0.0.1:9392
preds=(d5 d25 d7 d13)
delays=(5 25 7.3 13.7)
fe_topo_create 4
for i in 0 1 2 3; do
	fe_server $((i + 1)) "${preds[i]}-0" "${preds[i]}" --delay-ms "${delays[i]}" --delay-sigma 0.2
done
fe_servers_wait || fe_fail "model servers did not start"
fe_manifest nat "$vip" "d5:25:$(fe_backend_ip 1)" "d25:25:$(fe_backend_ip 2)" \
	"d7:25:$(fe_backend_ip 3)" "d13:25:$(fe_backend_ip 4)" -- --annotation ferry.io/protocol=http1

fe_ferryd_start # default flags: the default (classic) buckets
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

fe_prom_start "$prom" "$FE_TOP/deploy/prometheus/rules.yml" --enable-feature=native-histograms
fe_prom_series 4 # every predictor's series scraped before the load: rate() starts from it
sleep 2          # and one more scrape

# Keep-alive traffic; the client takes response times from the kernel (fe_prom_latclient).
out="$FE_RUN/load.json"
fe_prom_latclient "$vip" 4
sleep 5 # two more scrapes after the last request

# Scrapers that do not ask for protobuf still get text 0.0.4, and it lints.
ctype=$(fe_ns "$FE_NODE" curl -sf --max-time 2 -o /dev/null -w '%{content_type}' "http://$FE_METRICS/metrics")
[[ "$ctype" == "text/plain; version=0.0.4"* ]] || fe_fail "default /metrics content type: $ctype"
lint=$(fe_metrics | promtool check metrics 2>&1) || fe_fail "promtool check metrics: $lint"
[ -z "$lint" ] || fe_fail "promtool check metrics: $lint"

# 2.42 with native histograms ingests the native histogram and drops the classic buckets.
classic=$(fe_prom_query 'count(ferry_request_duration_seconds_bucket)')
fe_log "classic _bucket series ingested by Prometheus 2.42 with native histograms: $classic"

result=0
for pred in "${preds[@]}"; do
	for q in 0.5 0.99; do
		client=$(fe_json "$out" "d['predictors']['$pred']['p%d' % round($q * 100)]")
		fe_prom_near "histogram_quantile($q, sum by (predictor_name) (rate(ferry_request_duration_seconds{deployment_name=\"nat\",predictor_name=\"$pred\"}[1m])))" "$client" "$q" "$pred" ||
			result=1
		fe_log "$pred p$q: Prometheus (native) ${FE_PROM_VALUE}s, client ${client}s, error $FE_PROM_ERR, client's rank of it $FE_PROM_RANK"
		# the recording rule, as dashboards and alerts read it
		pn=99
		[ "$q" = 0.5 ] && pn=50
		fe_prom_near "ferry:predictor_request_duration_seconds:p${pn}_5m{deployment_name=\"nat\",predictor_name=\"$pred\"}" "$client" "$q" "$pred" ||
			result=1
		fe_log "$pred p$q: recording rule ${FE_PROM_VALUE}s, error $FE_PROM_ERR, client's rank of it $FE_PROM_RANK"
	done
done
[ "$result" -eq 0 ] || fe_fail "native-histogram quantiles are not within 5% (or 0.25 points by rank) of the client's"

# --no-backend-histograms: the real daemon flag, not just the renderer's option.
fe_metrics | grep -q '^ferry_backend_request_duration_seconds_bucket{' ||
	fe_fail "per-backend histograms missing with default flags"
fe_ferryd_stop || fe_fail "ferryd did not stop"
fe_ferryd_start --no-backend-histograms
body=$(fe_metrics) || fe_fail "no /metrics after restart"
grep -q 'ferry_backend_.*_duration_seconds' <<<"$body" &&
	fe_fail "--no-backend-histograms still exports per-backend histograms"
grep -q '^ferry_backend_new_connections_total{' <<<"$body" ||
	fe_fail "--no-backend-histograms dropped the per-backend counters too"
grep -q '^ferry_request_duration_seconds_bucket{' <<<"$body" ||
	fe_fail "--no-backend-histograms dropped the per-predictor histograms"
fe_log "--no-backend-histograms: per-backend histograms gone, counters and predictor histograms stay"
fe_pass
