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

# fe_prom_series N: waits (10 s at most) until Prometheus holds N http1
# latency series, scraped before the load starts. ferryd exports a
# predictor's empty histogram under the protocol its service declares
# (ferry.io/protocol: http1 here) before any request, so rate() over a window
# holding the load subtracts a sample taken before it. A series born with the
# load instead starts at its first scrape, and rate() leaves out the requests
# before that one: the load's first second or two, its connections' slowest
# requests (measured: p99 9-12% low against the client).
fe_prom_series() {
	local n

	fe_prom_count_http1() {
		n=$("$FE_PY" -c 'import json,sys; print(len(json.loads(sys.argv[1])["data"]["result"]))' \
			"$(fe_prom_query 'ferry_request_duration_seconds{protocol="http1"}')")
		[ "$n" -ge "$1" ]
	}
	fe_wait 10 fe_prom_count_http1 "$1" || fe_fail "Prometheus holds $n http1 latency series, not $1"
}

# fe_prom_latclient VIP NPREDICTORS: 15 s of keep-alive traffic from the
# client, every exchange on a connection one kernel sample; the results in
# $FE_RUN/load.json (every sample in $FE_RUN/samples.txt). The client takes
# the request's departure and the response's arrival from the kernel
# (transmit and receive timestamps), so a busy machine's scheduling delays in
# the client do not count against ferry. No request may fail, each of the
# NPREDICTORS predictors needs 200 samples, and 90% of the requests a
# transmit timestamp. The client spreads its 32 connections evenly over the
# predictors (--predictors: it redraws connections placed on one that holds
# its share), so that a weighted draw that left one predictor two connections
# (CI, under the sanitizer pass: 168 samples) cannot starve its quantiles.
fe_prom_latclient() {
	local out="$FE_RUN/load.json"

	fe_ns "$FE_CLIENT" "$FE_PY" "$FE_BIN/latclient.py" --target "$1" --connections 32 --predictors "$2" \
		--duration 15 --interval 0.02 --dump "$FE_RUN/samples.txt" >"$out" || fe_fail "latency client failed"
	[ "$(fe_json "$out" 'd["errors"]')" -eq 0 ] || fe_fail "failed requests: $(cat "$out")"
	[ "$(fe_json "$out" "len(d['predictors']) == $2 and min(v['n'] for v in d['predictors'].values()) >= 200")" = True ] ||
		fe_fail "too few samples per predictor: $(cat "$out")"
	[ "$(fe_json "$out" "d['tx_stamped'] >= 0.9 * sum(v['n'] for v in d['predictors'].values())")" = True ] ||
		fe_fail "too few transmit timestamps: $(cat "$out")"
}

# fe_prom_near PROMQL WANT [Q PREDICTOR]: the query's value in FE_PROM_VALUE
# (nan when it has none) and its error relative to WANT, the client's
# Q-quantile, in FE_PROM_ERR; status 0 when within 5%. With PREDICTOR, the
# client's samples of it (fe_prom_latclient's samples.txt) also judge the
# value by rank, as quantile sketches are judged: FE_PROM_RANK is the share of
# those samples at or below the value, and a value within 0.25 points of Q
# passes too. That is what the kernel's histogram guarantees (its counts are
# exact, a value inside a bucket is interpolated), and it decides where the
# client's samples are too sparse for 5% in value: in the slowest 1% of a
# few hundred requests neighbouring samples can be 10-25% apart.
# A p99 (Q 0.99) is reported but not judged under the sanitizer pass
# (FE_SANITIZED, tests/san-e2e): a sanitized ferryd slows the client's cores,
# and the client's tail then holds its own scheduling delays, which the
# kernel does not see. The plain run judges it.
fe_prom_near() {
	local resp verdict

	resp=$(fe_prom_query "$1") || fe_fail "Prometheus query failed"
	FE_PROM_VALUE=$("$FE_PY" -c 'import json,sys; r=json.loads(sys.argv[1])["data"]["result"]; print(r[0]["value"][1] if r else "nan")' "$resp")
	verdict=$("$FE_PY" - "$FE_PROM_VALUE" "$2" "${3:-}" "${4:-}" "$FE_RUN/samples.txt" <<'PYEOF'
import math, os, sys
k, c, q, pred, path = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
err = abs(k - c) / c if c > 0 and not math.isnan(k) else float("inf")
rank, ok = "-", err <= 0.05
if pred and q and os.path.exists(path) and not math.isnan(k):
    v = [float(x) for p, x in (ln.split() for ln in open(path)) if p == pred]
    if v:
        share = sum(1 for x in v if x <= k) / len(v)
        rank = "%.4f" % share
        ok = ok or abs(share - float(q)) <= 0.0025
print("%.4f %s %s" % (err, rank, "ok" if ok else "off"))
PYEOF
)
	# shellcheck disable=SC2034 # read by the scenarios
	read -r FE_PROM_ERR FE_PROM_RANK _ <<<"$verdict"
	[ -n "${FE_SANITIZED:-}" ] && [ "${3:-}" = 0.99 ] && return 0
	[ "${verdict##* }" = ok ]
}
