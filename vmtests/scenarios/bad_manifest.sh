#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# bad_manifest: two good SeldonDeployments serve. A third file is added beside
# them whose predictors' traffic sums to 110 (Seldon's webhook rejects that),
# and a fourth that is not YAML at all. The good ones keep serving with their
# weights; ferryd's log names the bad file and the field (traffic). Then one
# good deployment is edited into the same mistake: its last good version stays
# in force. Then wine.yaml becomes a symbolic link loop (an error; wine keeps
# serving) beside a FIFO named pipe.yaml (skipped with a warning).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init bad_manifest badm
fe_require_root
fe_require_ferryd
vip1=198.18.100.10:8000
vip2=198.18.100.11:8000
m="$(fe_backend_ip 1),$(fe_backend_ip 2)"
c="$(fe_backend_ip 3)"
fe_std_backends
fe_manifest iris "$vip1" "main:100:$m" "canary:0:$c"
fe_manifest wine "$vip2" "main:0:$m" "canary:100:$c"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip1" || fe_fail "VIP $vip1 does not answer within 10 s"
fe_wait 10 fe_vip_ok "$vip2" || fe_fail "VIP $vip2 does not answer within 10 s"

# A deployment whose traffic sums to 110, next to its (valid) slices.
"$FE_PY" "$FE_BIN/manifests.py" write --dir "$FE_RUN" --name broken --vip 198.18.100.12:8000 \
	--predictor "main:80:$m" --predictor "canary:30:$c"
cp "$FE_RUN/broken-main.yaml" "$FE_RUN/broken-canary.yaml" "$FE_CONF/"
mv "$FE_RUN/broken.yaml" "$FE_CONF/broken.yaml"
printf 'apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: [oops\n' \
	>"$FE_CONF/garbled.yaml"
sleep 1

check_good() {
	fe_burst "$vip1" 200 "$FE_RUN/good1.json"
	fe_only "$FE_RUN/good1.json" main "$1: $vip1: "
	fe_burst "$vip2" 200 "$FE_RUN/good2.json"
	fe_only "$FE_RUN/good2.json" canary "$1: $vip2: "
}
check_good "beside bad manifests"
fe_vip_ok 198.18.100.12:8000 && fe_fail "the rejected deployment (traffic 110) serves anyway"

# ferry_config_errors_total counts rejections since start, not outstanding
# errors times resyncs: resyncs that change nothing (SIGHUP, a good file
# rewritten) leave it alone; a new mistake adds exactly its own errors.
cerr() { fe_metric ferry_config_errors; }
cerr_total() { fe_metric ferry_config_errors_total; }
cerr_zero() { [ "$(cerr)" = 0 ]; }
if [ "$FE_LB" = ferry ]; then
	g1=$(cerr) t1=$(cerr_total) || fe_fail "ferryd's /metrics does not answer"
	[ "$g1" -ge 2 ] || fe_fail "ferry_config_errors is $g1 with broken.yaml and garbled.yaml in place"
	[ "$t1" -ge "$g1" ] || fe_fail "ferry_config_errors_total $t1 < ferry_config_errors $g1"
	for _ in 1 2 3; do
		kill -HUP "$FERRYD_PID"
		sleep 0.3
	done
	touch "$FE_CONF/wine.yaml"
	sleep 1
	[ "$(cerr)" = "$g1" ] || fe_fail "ferry_config_errors moved from $g1 to $(cerr) on resyncs without change"
	t2=$(cerr_total)
	[ "$t2" = "$t1" ] || fe_fail "ferry_config_errors_total went from $t1 to $t2 over 4 resyncs that rejected nothing new"
	fe_log "config errors: $g1 outstanding, $t1 rejections; unchanged after SIGHUP x3 and a touch"
fi

# The good one edited into the same mistake: the last good version stays.
"$FE_PY" "$FE_BIN/manifests.py" write --dir "$FE_RUN" --name iris --vip "$vip1" \
	--predictor "main:90:$m" --predictor "canary:20:$c"
mv "$FE_RUN/iris.yaml" "$FE_CONF/iris.yaml"
sleep 1
check_good "after a bad edit of iris"
if [ "$FE_LB" = ferry ]; then
	g3=$(cerr) t3=$(cerr_total)
	[ "$g3" -gt "$g1" ] || fe_fail "ferry_config_errors $g3 after the bad edit of iris (was $g1)"
	[ "$t3" -eq $((t1 + g3 - g1)) ] ||
		fe_fail "ferry_config_errors_total $t3 after the bad edit, want $t1 + $((g3 - g1)) new"
	# The mistakes removed: nothing outstanding, the rejections stay counted.
	rm -f "$FE_CONF/broken.yaml" "$FE_CONF/broken-main.yaml" "$FE_CONF/broken-canary.yaml" \
		"$FE_CONF/garbled.yaml"
	"$FE_PY" "$FE_BIN/manifests.py" write --dir "$FE_RUN" --name iris --vip "$vip1" \
		--predictor "main:100:$m" --predictor "canary:0:$c"
	mv "$FE_RUN/iris.yaml" "$FE_CONF/iris.yaml"
	fe_wait 5 cerr_zero || fe_fail "ferry_config_errors is $(cerr) with every mistake removed"
	[ "$(cerr_total)" = "$t3" ] || fe_fail "ferry_config_errors_total went from $t3 to $(cerr_total) when errors went away"
	fe_log "config errors after fixes: 0 outstanding, $t3 rejections in total"
fi

# A manifest that cannot be read (a symbolic link to itself, swapped in by
# rename) is an error that keeps its deployment serving, not a deletion; a
# FIFO named *.yaml is skipped with a warning, never opened (an open would
# hang ferryd).
if [ "$FE_LB" = ferry ]; then
	cp "$FE_CONF/wine.yaml" "$FE_RUN/wine.good"
	ln -s wine.yaml "$FE_CONF/.loop"
	# rename(2) itself: mv refuses, taking a link to its own name for the same file
	"$FE_PY" -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$FE_CONF/.loop" \
		"$FE_CONF/wine.yaml"
	mkfifo "$FE_CONF/pipe.yaml"
	sleep 1
	kill -HUP "$FERRYD_PID"
	sleep 0.5
	check_good "wine.yaml a symlink loop, pipe.yaml a FIFO"
	[ "$(cerr)" = 1 ] || fe_fail "ferry_config_errors is $(cerr) with wine.yaml unreadable, want 1"
	grep 'wine\.yaml' "$FE_RUN/ferryd.log" | grep -q 'cannot read: Too many levels of symbolic links' ||
		fe_fail "ferryd's log does not say wine.yaml cannot be read and why"
	grep 'pipe\.yaml' "$FE_RUN/ferryd.log" | grep -q 'not a regular file' ||
		fe_fail "ferryd's log does not say pipe.yaml is skipped"
	rm -f "$FE_CONF/pipe.yaml"
	mv "$FE_RUN/wine.good" "$FE_CONF/.wine"
	mv -T "$FE_CONF/.wine" "$FE_CONF/wine.yaml"
	fe_wait 5 cerr_zero || fe_fail "ferry_config_errors is $(cerr) with wine.yaml readable again"
	check_good "wine.yaml readable again"
	fe_log "unreadable wine.yaml: 1 error, wine kept serving; FIFO skipped"
fi

if [ "$FE_LB" = ferry ]; then
	log="$FE_RUN/ferryd.log"
	grep -n 'broken\.yaml' "$log" | grep -qi 'traffic' ||
		fe_fail "ferryd's log does not name broken.yaml and its traffic field"
	grep -q 'garbled\.yaml' "$log" || fe_fail "ferryd's log does not name garbled.yaml"
	grep -n 'iris\.yaml' "$log" | grep -qi 'traffic' ||
		fe_fail "ferryd's log does not name iris.yaml and its traffic field after the bad edit"
	fe_log "ferryd said: $(grep -E 'broken\.yaml|garbled\.yaml|iris\.yaml' "$log" | sort -u | head -5)"
	kill -0 "$FERRYD_PID" 2>/dev/null || fe_fail "ferryd exited over a bad manifest"
else
	fe_log "stand-in: ferryd log checks not run"
fi
fe_pass "good deployments unaffected; bad ones reported with file and field"
