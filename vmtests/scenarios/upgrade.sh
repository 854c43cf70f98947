#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# upgrade: a DaemonSet rolling update from ferry's first release to this tree.
# The first release (FE_UPGRADE_FROM, default commit 6344468) is built from
# this repository's history, runs the data plane with 24 held keep-alive
# connections (opened at 50/50) and an SRE's weight override (ferryctl weights) in force; it is
# stopped and this tree's ferryd starts on the same pins, as the next pod of
# the DaemonSet would. Every held connection keeps answering from the backend
# it started on, the override still steers new connections, and this tree's
# ferryctl reads the pins. When the map layout (FERRY_ABI_VERSION) changes,
# this is the test that the new ferryd migrates flows and overrides instead of
# dropping them.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init upgrade upgr
fe_require_root
fe_require_ferryd

from=${FE_UPGRADE_FROM:-6344468}
new_build=$FERRY_BUILD
old_build="$FERRY_BUILD/upgrade-from-$from"

# Builds the old release once per build directory, from git history: the
# exact tree that was released, with its own Makefile.
fe_build_old() {
	local src
	[ -x "$old_build/ferryd" ] && [ -x "$old_build/ferryctl" ] && return 0
	git -C "$FE_TOP" cat-file -e "$from^{commit}" 2>/dev/null ||
		fe_fail "commit $from is not in this clone's history (a shallow clone?): cannot build the release to upgrade from; fetch full history"
	src="$FE_RUN/src-$from"
	mkdir -p "$src"
	git -C "$FE_TOP" archive "$from" | tar -x -C "$src" || fe_fail "git archive $from failed"
	fe_log "building ferryd and ferryctl of $from (once, into $old_build)"
	make -C "$src" -j"$(nproc)" BUILD="$old_build" ${CLANG:+CLANG="$CLANG"} "$old_build/ferryd" "$old_build/ferryctl" \
		>"$FE_RUN/build-old.log" 2>&1 || {
		tail -n 20 "$FE_RUN/build-old.log" >&2
		fe_fail "building $from failed (log above)"
	}
}

# Some kernels refuse bpf_xdp_adjust_meta to XDP programs (this tree probes it
# and hands off to the stack instead, docs/datapath.md); the first release calls
# it unconditionally, so its XDP object does not load there. Loaded once in a
# private bpffs (nothing pinned outside it) to find out; on such a kernel the
# release is built again with the call replaced by its failure (-1), which its
# code handles as a call that failed at run time: the frame goes to the stack.
# That release wrote the next hop's MACs before the handoff, so the stack drops
# such a frame (fixed in issue 12): there it runs as tx_iface.sh runs ferryd,
# the backends' veth ends with GRO on and --xdp-tx-iface naming the node's
# backend-facing ends, so that its XDP redirects and never hands off.
old_tx=0 old_args=()
fe_old_xdp_loads() {
	# shellcheck disable=SC2016 # $1 is the inner shell's
	unshare -m sh -c 'mount -t bpf bpf /sys/fs/bpf && bpftool prog loadall "$1" /sys/fs/bpf/probe' \
		sh "$old_build/bpf/ferry_xdp.bpf.o" >"$FE_RUN/old-xdp-load.log" 2>&1
}

fe_build_old
if ! fe_old_xdp_loads; then
	grep -q "cannot use helper bpf_xdp_adjust_meta" "$FE_RUN/old-xdp-load.log" ||
		fe_fail "the XDP object of $from does not load: $(grep -v '^;' "$FE_RUN/old-xdp-load.log" | tail -n 5)"
	old_build="$old_build-no-adjust-meta"
	fe_log "this kernel refuses bpf_xdp_adjust_meta to XDP: $from is built with that call failing (-1), as it would at run time, and runs with --xdp-tx-iface on the backend-facing veths (their peers with GRO on)"
	CLANG="clang '-Dbpf_xdp_adjust_meta(ctx,delta)=(-1L)'" fe_build_old
	fe_old_xdp_loads ||
		fe_fail "the XDP object of $from does not load without bpf_xdp_adjust_meta: $(grep -v '^;' "$FE_RUN/old-xdp-load.log" | tail -n 5)"
	old_tx=1
fi
vip=198.18.100.10:8000
fe_std_backends
fe_manifest iris "$vip" "main:50:$(fe_backend_ip 1),$(fe_backend_ip 2)" "canary:50:$(fe_backend_ip 3)"

if [ "$old_tx" = 1 ]; then
	for ((i = 1; i <= FE_NBACKENDS; i++)); do
		fe_ns "$(fe_backend_ns "$i")" ethtool -K "$(fe_backend_if "$i")" gro on >/dev/null 2>&1 ||
			fe_fail "ethtool -K $(fe_backend_if "$i") gro on failed"
		old_args+=(--xdp-tx-iface "$(fe_node_if "$i")")
	done
fi
FERRY_BUILD=$old_build fe_ferryd_start "${old_args[@]}"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer through the old release within 10 s"

hold="$FE_RUN/hold.json"
fe_loadgen_bg "$hold" --target "$vip" --hold 24 --ready-file "$FE_RUN/hold.ready"
holder=$FE_LAST_PID
fe_wait 15 test -s "$FE_RUN/hold.ready" || fe_fail "held connections did not all answer"
# The override after the connections are held at 50/50: both predictors hold some.
nsenter --net="/run/netns/$FE_NODE" "$old_build/ferryctl" --pin-path "$FE_PIN" \
	weights "$vip" main=20 canary=80 >>"$FE_RUN/ferryctl.log" 2>&1 ||
	fe_fail "the old release's ferryctl weights failed (see $FE_RUN/ferryctl.log)"
sleep 1

fe_log "rolling update: stop $from, start this tree's ferryd on the same pins"
fe_ferryd_stop TERM || fe_fail "the old ferryd did not exit on SIGTERM"
FERRY_BUILD=$new_build fe_ferryd_start
sleep 1

fe_burst "$vip" 800 "$FE_RUN/after.json"
sleep 2 # two more rounds on every held connection after the upgrade
fe_loadgen_stop "$holder"

[ "$(fe_json "$FE_RUN/after.json" 'd["error_total"]')" -eq 0 ] ||
	fe_fail "new connections failed after the upgrade: $(fe_json "$FE_RUN/after.json" 'd["errors"]')"
share=$(fe_share_check "$FE_RUN/after.json" canary 0.80) ||
	fe_fail "the override (canary 80%) did not survive the upgrade: $share"
[ -s "$hold" ] || fe_fail "hold client printed no summary"
bad=$(fe_json "$hold" '[c for c in d["connections"] if c["failures"] or len(c["backends"]) != 1 or c["reopened"]]')
[ "$bad" = "[]" ] || fe_fail "held connections broke or moved across the upgrade: $bad"
on_main=$(fe_json "$hold" 'sum(1 for c in d["connections"] if c["backends"][0].startswith("main"))')
rounds=$(fe_json "$hold" 'min(c["requests"] for c in d["connections"])')
[ "$on_main" -gt 0 ] || fe_fail "no held connection was on main: the check proves nothing"
[ "$rounds" -ge 4 ] || fe_fail "held connections made only $rounds requests"
nsenter --net="/run/netns/$FE_NODE" "$new_build/ferryctl" --pin-path "$FE_PIN" services \
	>"$FE_RUN/services.txt" 2>&1 || fe_fail "this tree's ferryctl cannot read the upgraded pins: $(cat "$FE_RUN/services.txt")"
grep -q "$vip" "$FE_RUN/services.txt" || fe_fail "ferryctl services does not list $vip after the upgrade"
fe_pass "$from -> this tree: 24 held connections ($on_main on main) kept their backends over $rounds requests each; override kept ($share)"
