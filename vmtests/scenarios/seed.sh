#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# seed: one hash across nodes. Two ferryd instances (two pin roots, the second
# in a namespace of its own, as a second node) given the same manifests and the
# same --hash-seed-file build the same selection state: the same hash seed and,
# per VIP, every table slot naming the same backend address (compared by
# address, not by node-local id; vmtests/bin/selection_state.py). Their
# histories differ on purpose (node A saw other weights first, node B another
# deployment and other backend ids), since a real node's history is its own.
# Then 24 keep-alive connections through node A keep working, on the same
# backends, when their flow state is flushed mid-stream (`ferryctl flows
# --flush`, then `--flush SERVICE`) and when ferryd is killed, the data plane
# removed (`ferryctl reset --yes`) and rebuilt from scratch with the same seed
# file, as a second node picking up the connections would. The client is
# paused (SIGSTOP) around each loss of flow state, with no request in flight:
# a response that crosses the node while its flow state is gone leaves with
# the backend's address, and the client's stack answers it with a RST (a
# limit of state lost on the reply side, docs/datapath.md; at 20 requests a
# second per connection instead of 2, two runs of three lost a connection
# that way). What is checked is the pickup of a connection's next packet.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init seed seed
fe_require_root
fe_require_ferryd
[ "$FE_LB" = iptables ] && fe_skip "compares ferry's pinned selection state (ferry only)"
command -v bpftool >/dev/null || fe_fail "needs bpftool (make deps)"

NODE2="$FE_PFX-node2" # matches fe-seed-*: fe_cleanup removes it
fe_second_pin
PIN2=$FE_PIN2
CONF2="$FE_RUN/conf2"

vip=198.18.100.10:8000
vip2=198.18.100.11:8000
vip3=198.18.100.12:8000
b1=$(fe_backend_ip 1)
b2=$(fe_backend_ip 2)
b3=$(fe_backend_ip 3)
size=1021 # a prime; small, so that bpftool reads the tables quickly
seedf="$FE_RUN/hash-seed"
head -c 32 /dev/urandom >"$seedf"
ctl() { nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "$FE_PIN" "$@"; }
problems=()

fe_std_backends
mkdir -p "$CONF2"
ip netns add "$NODE2" || fe_fail "ip netns add $NODE2"

# Node A: 90/10 first, then the final manifests.
fe_manifest iris "$vip" "main:90:$b1,$b2" "canary:10:$b3"
fe_ferryd_start --hash-seed-file "$seedf" --table-size "$size"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
fe_manifest iris "$vip" "main:50:$b1,$b2" "canary:50:$b3"
fe_manifest beta "$vip2" "main:70:$b2,$b3" "canary:30:$b1"
sleep 1

# Node B (ferryd --once, no interface of its own): another deployment first,
# so its backend ids and table history differ from A's, then the final manifests.
node2_once() {
	nsenter --net="/run/netns/$NODE2" "$FERRY_BUILD/ferryd" --config-dir "$CONF2" \
		--pod-iface 'fenone*' --pin-path "$PIN2" --table-size "$size" \
		--hash-seed-file "$seedf" --once >>"$FE_RUN/ferryd2.log" 2>&1
}
man2() { "$FE_PY" "$FE_BIN/manifests.py" "$@" --dir "$CONF2"; }

# An empty seed file is refused before the data plane is touched.
: >"$FE_RUN/empty-seed"
if nsenter --net="/run/netns/$NODE2" "$FERRY_BUILD/ferryd" --config-dir "$CONF2" \
	--pod-iface 'fenone*' --pin-path "$PIN2" --hash-seed-file "$FE_RUN/empty-seed" --once \
	>"$FE_RUN/empty-seed.log" 2>&1; then
	fe_fail "ferryd accepted an empty --hash-seed-file"
fi
grep -q -- "--hash-seed-file $FE_RUN/empty-seed: the file is empty.*head -c 32 /dev/urandom" \
	"$FE_RUN/empty-seed.log" ||
	fe_fail "the error for an empty seed file does not name the file and the fix: $(cat "$FE_RUN/empty-seed.log")"
[ ! -e "$PIN2" ] || fe_fail "ferryd made pins before refusing an empty seed file"

man2 write --name gamma --vip "$vip3" --predictor "main:100:$b3,$b1,$b2" || fe_fail "manifests.py"
man2 write --name beta --vip "$vip2" --predictor "main:20:$b3" --predictor "canary:80:$b1" ||
	fe_fail "manifests.py"
node2_once || fe_fail "node B: ferryd --once (history) failed: $(tail -n 3 "$FE_RUN/ferryd2.log")"
man2 delete --name gamma
man2 write --name iris --vip "$vip" --predictor "main:50:$b1,$b2" --predictor "canary:50:$b3" ||
	fe_fail "manifests.py"
man2 write --name beta --vip "$vip2" --predictor "main:70:$b2,$b3" --predictor "canary:30:$b1" ||
	fe_fail "manifests.py"
node2_once || fe_fail "node B: ferryd --once failed: $(tail -n 3 "$FE_RUN/ferryd2.log")"
# The second run adopted the first one's pins: same file, same seed.
grep -q "hash seed: the cluster's, from --hash-seed-file $seedf (the same the pinned data plane used)" \
	"$FE_RUN/ferryd2.log" ||
	problems+=("node B's second run does not find its pinned seed equal to the file's: $(grep 'hash seed' "$FE_RUN/ferryd2.log" | tail -1)")

compare() { # compare WHAT: node A's pinned selection state against node B's
	last_compare=$1
	"$FE_PY" "$FE_BIN/selection_state.py" "$FE_PIN" >"$FE_RUN/a-$1.json" ||
		fe_fail "cannot read node A's selection state"
	"$FE_PY" "$FE_BIN/selection_state.py" "$PIN2" >"$FE_RUN/b-$1.json" ||
		fe_fail "cannot read node B's selection state"
	local out
	out=$("$FE_PY" "$FE_BIN/selection_state.py" --diff "$FE_RUN/a-$1.json" "$FE_RUN/b-$1.json")
	local rc=$?
	local what=${2:-$1}
	fe_log "$what: $out"
	[ $rc -eq 0 ] || problems+=("$what: nodes A and B differ: $out")
}
compare history "same manifests and seed, different histories"

# Keep-alive connections on node A, across a flush, a flush of one service,
# and a rebuild from scratch. The rebuild is an outage (no program attached): a
# request sent into it is delivered by TCP's retransmission once the node is back,
# up to ~13 s later (RTO backoff 0.2 .. 6.4 s) when the rebuild takes 6 s (a
# sanitizer build on a loaded machine), so the client waits 30 s before it calls
# a request lost.
hold="$FE_RUN/hold.json"
fe_loadgen_bg "$hold" --target "$vip" --hold 24 --hold-interval 0.5 --timeout 30 \
	--ready-file "$FE_RUN/hold.ready"
holder=$FE_LAST_PID
fe_wait 15 test -s "$FE_RUN/hold.ready" || fe_fail "held connections did not all answer"
sleep 1
# Between requests: the server answers in milliseconds, the client's ACK follows within 40 ms.
quiet() { kill -STOP "$holder" && sleep 0.3; }
resume() { kill -CONT "$holder"; }

quiet
ctl -j flows --flush >"$FE_RUN/flush-all.json" || fe_fail "ferryctl flows --flush exited $?"
resume
flushed=$(fe_json "$FE_RUN/flush-all.json" 'd["deleted"]["ferry_flows"]')
fe_log "flush (all): $(cat "$FE_RUN/flush-all.json")"
[ "$flushed" -ge 24 ] || fe_fail "ferryctl flows --flush deleted $flushed forward flows, expected the 24 held ones at least"
sleep 2
quiet
ctl -j flows --flush "$vip" >"$FE_RUN/flush-svc.json" || fe_fail "ferryctl flows --flush $vip exited $?"
resume
fe_log "flush ($vip): $(cat "$FE_RUN/flush-svc.json")"
flushed=$(fe_json "$FE_RUN/flush-svc.json" 'd["deleted"]["ferry_flows"]')
[ "$flushed" -ge 24 ] ||
	fe_fail "ferryctl flows --flush $vip deleted $flushed forward flows: the held connections had no flow state again"
ctl -j flows --flush "$vip2" >"$FE_RUN/flush-other.json" || fe_fail "ferryctl flows --flush $vip2 exited $?"
[ "$(fe_json "$FE_RUN/flush-other.json" 'd["total"]')" -eq 0 ] ||
	problems+=("flushing $vip2 deleted flows of $vip: $(cat "$FE_RUN/flush-other.json")")
sleep 2

fe_log "kill -9, ferryctl reset --yes, rebuild from scratch with the same seed file"
quiet
fe_ferryd_stop KILL
ctl reset --yes >>"$FE_RUN/ferryctl.log" 2>&1 || fe_fail "ferryctl reset --yes failed"
[ ! -e "$FE_PIN/ferry_flows" ] || fe_fail "ferryctl reset left $FE_PIN/ferry_flows"
fe_ferryd_start --hash-seed-file "$seedf" --table-size "$size"
sleep 3
compare rebuilt "node A rebuilt from scratch"
resume
sleep 2

fe_loadgen_stop "$holder"
[ -s "$hold" ] || fe_fail "hold client printed no summary"
fe_log "held: $(fe_json "$hold" '[c["backends"] for c in d["connections"]]')"
bad=$(fe_json "$hold" '[{k: c[k] for k in ("id", "backends", "failures", "errors", "reopened")} for c in d["connections"] if c["failures"] or len(c["backends"]) != 1 or c["reopened"]]')
if [ "$bad" != "[]" ]; then
	# What the rebuilt node counted (drops, refusals, pickups past the guard), and when it
	# came back, so that a failure names its cause (the one on record was a response in
	# flight at a loss of state, before the client was paused around them).
	facts=$(fe_metrics 2>/dev/null | grep -E '^ferry_(drops|datapath_events)_total' |
		awk '$2 != 0 { sub(/^ferry_/, ""); printf "%s ", $0 }')
	problems+=("held connections broke or moved: $bad; rebuilt node: ${facts:-no counters}; its log: $(grep -E 'attached|sync:' "$FE_RUN/ferryd.log" | tail -n 5 | tr '\n' '|')")
fi
on_canary=$(fe_json "$hold" 'sum(1 for c in d["connections"] if c["backends"] and c["backends"][0].startswith("canary"))')
rounds=$(fe_json "$hold" 'min(c["requests"] for c in d["connections"])')
[ "$on_canary" -gt 0 ] && [ "$on_canary" -lt 24 ] ||
	fe_fail "held connections on canary: $on_canary of 24: the check needs both predictors"
[ "$rounds" -ge 10 ] || fe_fail "held connections made only $rounds requests"
# Another seed file on adopted pins: the new seed takes over (for new flows), and ferryd says so.
head -c 32 /dev/urandom >"$FE_RUN/hash-seed-new"
nsenter --net="/run/netns/$NODE2" "$FERRY_BUILD/ferryd" --config-dir "$CONF2" --pod-iface 'fenone*' \
	--pin-path "$PIN2" --table-size "$size" --hash-seed-file "$FE_RUN/hash-seed-new" --once \
	>>"$FE_RUN/ferryd2.log" 2>&1 || fe_fail "node B: ferryd --once with a new seed file failed"
grep -q "differs from the one the pinned data plane used: it applies to new connections" \
	"$FE_RUN/ferryd2.log" || problems+=("a changed seed file is not reported")
"$FE_PY" "$FE_BIN/selection_state.py" "$PIN2" >"$FE_RUN/b-new-seed.json" ||
	fe_fail "cannot read node B's selection state"
[ "$(fe_json "$FE_RUN/b-new-seed.json" 'd["hash_seed"]')" != "$(fe_json "$FE_RUN/b-$last_compare.json" 'd["hash_seed"]')" ] ||
	problems+=("node B kept its pinned seed after the seed file changed")

[ ${#problems[@]} -eq 0 ] || fe_fail "$(printf '%s; ' "${problems[@]}")"
fe_pass "same selection state on two nodes with different histories; 24 held connections ($on_canary on canary) kept their backends over $rounds requests across two flushes and a rebuild from scratch"
