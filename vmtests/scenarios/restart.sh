#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# restart: under steady load (keep-alive connections plus a stream of new
# connections), ferryd is restarted (SIGTERM, then started again) and sent
# SIGHUP (full resync) and SIGUSR1/SIGUSR2 (logged, ignored): no request
# fails, and a VIP another deployment claims (rejected) stays with iris across
# the restart. Then ferryd is killed with SIGKILL: forwarding goes on untouched, for
# established and new connections, with the weights last applied; a new
# ferryd picks up where the old one left. Last, second ferryds that must not
# start (a bad flag: exit 2; the metrics port in use: exit 1) leave no pins
# of their own and do not disturb the running one or its pins.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init restart rstrt
fe_require_root
fe_require_ferryd
fe_second_pin
vip=198.18.100.10:8000
m="$(fe_backend_ip 1),$(fe_backend_ip 2)"
c="$(fe_backend_ip 3)"
fe_std_backends
fe_manifest iris "$vip" "main:80:$m" "canary:20:$c"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
if [ "$FE_LB" = ferry ]; then
	# A second deployment claims the VIP: rejected, iris holds it. A restart
	# must keep it so, though apple sorts first: the first ferryd after one
	# gave the VIP to apple and reset iris's connections.
	fe_manifest apple "$vip" "main:100:$c"
	fe_wait 5 grep -q "already used by SeldonDeployment default/iris" "$FE_RUN/ferryd.log" ||
		fe_fail "apple's claim on iris's VIP was not refused"
fi

ka="$FE_RUN/keepalive.json"
nc="$FE_RUN/newconns.json"
fe_loadgen_bg "$ka" --target "$vip" --keepalive --connections 16 --rate 200
ka_pid=$FE_LAST_PID
fe_loadgen_bg "$nc" --target "$vip" --close --rate 200 --concurrency 16 --timeout 2
nc_pid=$FE_LAST_PID
sleep 1

fe_log "restart: SIGTERM"
# Problems in how ferryd handles signals are collected and reported at the
# end, so that the forwarding checks still run and say what they see.
problems=()
fe_ferryd_stop TERM || fe_fail "ferryd did not exit on SIGTERM within 10 s"
[ "$FE_LB" = iptables ] || [ "$FE_FERRYD_RC" -eq 0 ] ||
	problems+=("ferryd did not handle SIGTERM: exit status $FE_FERRYD_RC (128 + signal: killed by it)")
sleep 1 # traffic flows with no ferryd at all
fe_ferryd_start
sleep 1

if [ "$FE_LB" = ferry ]; then
	fe_log "SIGHUP: full resync under load"
	fe_ferryd_hup
	sleep 1
	if ! kill -0 "$FERRYD_PID" 2>/dev/null; then
		wait "$FERRYD_PID" 2>/dev/null
		problems+=("ferryd exited on SIGHUP (exit status $?) instead of resyncing")
		fe_ferryd_start
	fi
	# Their default action is to end the process: the control plane would die.
	for sig in USR1 USR2; do
		kill -"$sig" "$FERRYD_PID"
		sleep 0.5
		if ! kill -0 "$FERRYD_PID" 2>/dev/null; then
			wait "$FERRYD_PID" 2>/dev/null
			problems+=("ferryd exited on SIG$sig (exit status $?) instead of ignoring it")
			fe_ferryd_start
		fi
	done
	grep -q "SIGUSR2.*ignored" "$FE_RUN/ferryd.log" ||
		problems+=("ferryd's log does not say it ignored SIGUSR2")
fi

fe_log "kill -9"
fe_ferryd_stop KILL
sleep 2
fe_burst "$vip" 1000 "$FE_RUN/after-kill.json"
share=$(fe_share_check "$FE_RUN/after-kill.json" canary 0.20) ||
	fe_fail "after kill -9 the split changed: $share"
[ "$(fe_json "$FE_RUN/after-kill.json" 'd["error_total"]')" -eq 0 ] ||
	fe_fail "new connections failed after kill -9: $(fe_json "$FE_RUN/after-kill.json" 'd["errors"]')"

fe_log "start again after kill -9"
fe_ferryd_start
sleep 1
fe_manifest iris "$vip" "main:0:$m" "canary:100:$c"
sleep 1
fe_burst "$vip" 200 "$FE_RUN/after-restart.json"
fe_only "$FE_RUN/after-restart.json" canary "a ferryd started after kill -9 does not apply edits: "

fe_loadgen_stop "$ka_pid"
fe_loadgen_stop "$nc_pid"
for f in "$ka" "$nc"; do
	[ -s "$f" ] || fe_fail "load client printed no summary ($f)"
	fe_log "$(basename "$f"): $(fe_json "$f" '{k: d[k] for k in ("requests", "errors", "predictors")}')"
	[ "$(fe_json "$f" 'd["error_total"]')" -eq 0 ] ||
		fe_fail "requests failed across restarts ($(basename "$f" .json)): $(fe_json "$f" 'd["errors"]')"
done
[ "$(fe_json "$ka" 'd["reopened"]')" -eq 0 ] || fe_fail "keep-alive connections were reopened"

# no_start WANT_RC PIN_PATH ARGS...: a second ferryd that must refuse to start
# with exit status WANT_RC; its output is in $FE_RUN/no-start.log.
no_start() {
	local want=$1 pin=$2 rc
	shift 2
	nsenter --net="/run/netns/$FE_NODE" timeout 20 "$FERRY_BUILD/ferryd" --config-dir "$FE_CONF" \
		--iface "$FE_IF_NODE_CLIENT" --pin-path "$pin" "$@" >"$FE_RUN/no-start.log" 2>&1
	rc=$?
	[ "$rc" -eq "$want" ] ||
		problems+=("ferryd $* exited $rc, want $want: $(tail -n 2 "$FE_RUN/no-start.log" | tr '\n' ' ')")
	if [ -d "$FE_PIN2" ] && [ -n "$(ls -A "$FE_PIN2" 2>/dev/null)" ]; then
		problems+=("ferryd $* left pins at $FE_PIN2: $(ls "$FE_PIN2" | head -3 | tr '\n' ' ')")
		"$FERRY_BUILD/ferryctl" reset --yes --pin-path "$FE_PIN2" >/dev/null 2>&1
		rm -rf "$FE_PIN2"
	fi
}
if [ "$FE_LB" = ferry ]; then
	fe_log "second ferryds that must not start"
	no_start 2 "$FE_PIN2" --metrics-addr bogus
	grep -q -- "--metrics-addr bogus" "$FE_RUN/no-start.log" ||
		problems+=("no message naming --metrics-addr bogus")
	no_start 2 "$FE_PIN2" --metrics-addr 127.0.0.1:99999 --once
	no_start 2 "$FE_PIN2" --host-clients=/nonexistent/cgroup
	# The running ferryd holds the port: found before anything is created ...
	no_start 1 "$FE_PIN2" --metrics-addr "$FE_METRICS"
	grep -q "cannot listen" "$FE_RUN/no-start.log" || problems+=("no message saying the port is taken")
	# ... and before adopted pins are touched: they carry the running ferryd's state.
	no_start 1 "$FE_PIN" --metrics-addr "$FE_METRICS"
	kill -0 "$FERRYD_PID" 2>/dev/null || problems+=("the running ferryd died")
	fe_ferryd_pinned || problems+=("the running ferryd's pins at $FE_PIN are gone")
	fe_manifest iris "$vip" "main:100:$m" "canary:0:$c"
	sleep 1
	fe_burst "$vip" 200 "$FE_RUN/after-no-start.json"
	fe_only "$FE_RUN/after-no-start.json" main "after the refused starts, the running ferryd: "
fi
[ ${#problems[@]} -eq 0 ] ||
	fe_fail "$(printf '%s; ' "${problems[@]}")forwarding itself was fine: $(fe_json "$ka" 'd["ok"]') keep-alive + $(fe_json "$nc" 'd["ok"]') new-connection requests, 0 failed"
fe_pass "$(fe_json "$ka" 'd["ok"]') keep-alive + $(fe_json "$nc" 'd["ok"]') new-connection requests over SIGTERM restart and kill -9, 0 failed; $share"
