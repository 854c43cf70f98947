#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# scale: 1,000 SeldonDeployments (90/10) with 10,000 backends in all, applied
# by `ferryd --once`. Prints how long the apply took and ferryd's peak RSS
# (reported, not asserted: speed is for `make bench`), checks that ferryd
# exits 0, and that the deployments with real backends (the first three and
# the last one) forward for real afterwards, with the data plane left by a
# ferryd that is no longer running.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init scale scale
fe_require_root
fe_require_ferryd
[ -x /usr/bin/time ] || fe_skip "needs /usr/bin/time (Debian package time)"
fe_std_backends
services=${FE_SCALE_SERVICES:-1000}
last=$((services - 1))
"$FE_PY" "$FE_BIN/manifests.py" scale --dir "$FE_CONF" --state-dir "$FE_SPECS" \
	--services "$services" --backends-per-predictor 5 --real "0,1,2,$last" \
	--real-backends "$(fe_backend_ip 1),$(fe_backend_ip 2)" "$(fe_backend_ip 3)" >&2 ||
	fe_fail "manifests.py scale failed"
nfiles=$(find "$FE_CONF" -name '*.yaml' | wc -l)
fe_log "$nfiles manifest files"

t0=$(date +%s%N)
FE_WRAP="/usr/bin/time -v -o $FE_RUN/time.txt" fe_ferryd_once
rc=$?
t1=$(date +%s%N)
secs=$(awk "BEGIN{printf \"%.2f\", ($t1 - $t0) / 1e9}")
[ "$rc" -eq 0 ] || fe_fail "ferryd --once exited $rc over $services deployments"
if [ "$FE_LB" = ferry ]; then
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$FE_RUN/time.txt")
	summary="apply of $services deployments / $((services * 10)) backends: ${secs} s, ferryd peak RSS ${rss} KiB"
else
	summary="stand-in apply: ${secs} s"
fi
echo "$summary" >&2

# VIP of deployment s: (198.18.200.1 + s):8000, inside 198.18.200.0/21
for s in 0 1 2 "$last"; do
	vip="198.18.$((200 + (s + 1) / 256)).$(((s + 1) % 256)):8000"
	fe_burst "$vip" 300 "$FE_RUN/vip-$s.json"
	[ "$(fe_json "$FE_RUN/vip-$s.json" 'd["error_total"]')" -eq 0 ] ||
		fe_fail "deployment m$(printf %04d "$s") ($vip) does not forward: $(fe_json "$FE_RUN/vip-$s.json" 'd["errors"]')"
	[ "$(fe_json "$FE_RUN/vip-$s.json" 'd["predictors"].get("main", 0) > 0 and d["predictors"].get("canary", 0) > 0')" = True ] ||
		fe_fail "deployment m$(printf %04d "$s") ($vip) does not split: $(fe_json "$FE_RUN/vip-$s.json" 'd["predictors"]')"
done
fe_pass "$summary; 4 real VIPs forward"
