# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# A real Prometheus server (Debian's) scraping ferryd for the scenarios that
# compare what Prometheus computes from ferry's histograms with what a client
# measured for the same requests (prom_latency, prom_native). Sourced after
# topo.sh, never run.

# fe_prom_start ADDR RULES [PROMETHEUS ARGS...]: Prometheus in the node
# namespace listening on ADDR, scraping ferryd every 2 s (and evaluating the
# rule file RULES as often; "" for none), until it has scraped ferryd. 2 s, not
# 1 s: a scrape's timeout cannot exceed its interval, and a sanitizer build of
# ferryd on a loaded 2-core machine can take over a second to answer.
fe_prom_start() {
	FE_PROM=$1
	local rules=$2

	shift 2
	{
		printf 'global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 2s\n'
		[ -z "$rules" ] || printf 'rule_files:\n  - %s\n' "$rules"
		printf 'scrape_configs:\n  - job_name: ferry\n    static_configs:\n'
		printf "      - targets: ['%s']\n" "$FE_METRICS"
	} >"$FE_RUN/prometheus.yml"
	ip netns exec "$FE_NODE" prometheus --config.file="$FE_RUN/prometheus.yml" "$@" \
		--storage.tsdb.path="$FE_RUN/tsdb" --web.listen-address="$FE_PROM" \
		>"$FE_RUN/prometheus.log" 2>&1 &
	FE_PIDS+=($!)
	fe_wait 30 fe_prom_up ||
		fe_fail "Prometheus does not scrape ferryd: $(fe_prom_query 'up{job="ferry"}' 2>&1) $(tail -n 5 "$FE_RUN/prometheus.log")"
}

# fe_prom_query PROMQL: prints the JSON result.
fe_prom_query() {
	fe_ns "$FE_NODE" curl -sf --max-time 5 "http://$FE_PROM/api/v1/query" --data-urlencode "query=$1"
}

fe_prom_up() { [[ "$(fe_prom_query 'up{job="ferry"}' 2>/dev/null)" == *'"1"]'* ]]; }

# fe_prom_latclient VIP NPREDICTORS: 15 s of keep-alive traffic from the
# client, every exchange on a connection one kernel sample; the results in
# $FE_RUN/load.json. The client takes the response's arrival time from the
# kernel (SO_TIMESTAMPNS), so a busy machine's scheduling delays in the client
# do not count against ferry. No request may fail, and each of the
# NPREDICTORS predictors needs 200 samples.
fe_prom_latclient() {
	local out="$FE_RUN/load.json"

	fe_ns "$FE_CLIENT" "$FE_PY" "$FE_BIN/latclient.py" --target "$1" --connections 16 \
		--duration 15 --interval 0.02 >"$out" || fe_fail "latency client failed"
	[ "$(fe_json "$out" 'd["errors"]')" -eq 0 ] || fe_fail "failed requests: $(cat "$out")"
	[ "$(fe_json "$out" "len(d['predictors']) == $2 and min(v['n'] for v in d['predictors'].values()) >= 200")" = True ] ||
		fe_fail "too few samples per predictor: $(cat "$out")"
}

# fe_prom_near PROMQL WANT: the query's value in FE_PROM_VALUE (nan when it
# has none) and its error relative to WANT in FE_PROM_ERR; status 0 when
# within 5%. A p99 (WANT's quantile, 0.99 as the third argument) is reported
# but not judged under the sanitizer pass (FE_SANITIZED, tests/san-e2e): a
# sanitized ferryd slows the client's cores, and the client's tail then holds
# its own scheduling delays, which the kernel does not see. The plain run
# judges it.
fe_prom_near() {
	local resp verdict

	resp=$(fe_prom_query "$1") || fe_fail "Prometheus query failed"
	FE_PROM_VALUE=$("$FE_PY" -c 'import json,sys; r=json.loads(sys.argv[1])["data"]["result"]; print(r[0]["value"][1] if r else "nan")' "$resp")
	verdict=$("$FE_PY" -c "
import math
k, c = float('$FE_PROM_VALUE'), float('$2')
err = abs(k - c) / c if c > 0 and not math.isnan(k) else float('inf')
print('%.4f %s' % (err, 'ok' if err <= 0.05 else 'off'))")
	# shellcheck disable=SC2034 # read by the scenarios
	FE_PROM_ERR=${verdict% *}
	[ -n "${FE_SANITIZED:-}" ] && [ "${3:-}" = 0.99 ] && return 0
	[ "${verdict#* }" = ok ]
}
