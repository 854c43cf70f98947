#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# live_edit: while keep-alive traffic flows, the manifest goes 75/25 -> 0/100
# -> 100/0 (the last edit rewrites the file in place, truncate then write, the
# way some editors save). After each edit, new connections follow the new
# weights within 1 s; the established keep-alive connections see no failed
# request and no reconnect throughout. Then the directory itself is swapped
# by rename, removed (the last state stays, with a config error) and created
# again, and made a ConfigMap volume whose ..data link is swapped: ferryd
# follows the path each time.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init live_edit ledit
fe_require_root
fe_require_ferryd
vip=198.18.100.10:8000
m="$(fe_backend_ip 1),$(fe_backend_ip 2)"
c="$(fe_backend_ip 3)"
fe_std_backends
fe_manifest iris "$vip" "main:75:$m" "canary:25:$c"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

ka="$FE_RUN/keepalive.json"
fe_loadgen_bg "$ka" --target "$vip" --keepalive --connections 16 --rate 200
ka_pid=$FE_LAST_PID
sleep 1

fe_burst "$vip" 2000 "$FE_RUN/p75.json"
share=$(fe_share_check "$FE_RUN/p75.json" canary 0.25) || fe_fail "75/25: $share"
fe_log "75/25: $share"

fe_manifest iris "$vip" "main:0:$m" "canary:100:$c"
sleep 1
fe_burst "$vip" 300 "$FE_RUN/p0.json"
fe_only "$FE_RUN/p0.json" canary "after 0/100: "

FE_STYLE=truncate fe_manifest iris "$vip" "main:100:$m" "canary:0:$c"
sleep 1
fe_burst "$vip" 300 "$FE_RUN/p100.json"
fe_only "$FE_RUN/p100.json" main "after 100/0 (file rewritten in place): "

sleep 1
fe_loadgen_stop "$ka_pid"
[ -s "$ka" ] || fe_fail "keep-alive client printed no summary"
fe_log "keep-alive: $(fe_json "$ka" '{k: d[k] for k in ("requests", "errors", "predictors", "reopened")}')"
[ "$(fe_json "$ka" 'd["error_total"]')" -eq 0 ] ||
	fe_fail "failed requests on established connections: $(fe_json "$ka" 'd["errors"]')"
[ "$(fe_json "$ka" 'd["reopened"]')" -eq 0 ] || fe_fail "keep-alive connections were reopened"
[ "$(fe_json "$ka" 'd["ok"]')" -gt 500 ] || fe_fail "too little keep-alive traffic to tell"

# Files that are not manifests (an editor's swap and backup files, sed -i's and
# a writer's temporary ones) start no sync: one would find nothing to read and
# delay the edit that follows. ferry_sync_generation counts every sync.
gen=$(fe_metric ferry_sync_generation) || fe_fail "ferryd's /metrics does not answer"
src=$(find "$FE_CONF" -maxdepth 1 -name '*.yaml' | head -1)
for n in .iris.yaml.swp iris.yaml.tmp iris.yaml~ sedAb12Cd 4913; do
	cp "$src" "$FE_CONF/$n" && mv "$FE_CONF/$n" "$FE_CONF/$n.2" && rm -f "$FE_CONF/$n.2"
done
sleep 1
gen2=$(fe_metric ferry_sync_generation) || fe_fail "ferryd's /metrics does not answer"
[ "$gen2" = "$gen" ] ||
	fe_fail "writing, renaming and deleting 5 files that are not manifests ran syncs: generation $gen -> $gen2"
# ... and the check can fail: an edit of a manifest moves it.
fe_manifest iris "$vip" "main:50:$m" "canary:50:$c"
sleep 1
[ "$(fe_metric ferry_sync_generation)" != "$gen2" ] ||
	fe_fail "an edit of iris did not move ferry_sync_generation either"

# The directory is followed by its path, not its inode: replaced by rename
# (GitOps), removed and created again, or a ConfigMap volume's ..data swap.
# Removed, it keeps the last state and says why (a config error) until it is back.
dirs=""
if [ "$FE_LB" = ferry ]; then
	conf=$FE_CONF
	cp -r "$conf" "$FE_RUN/conf.new"
	FE_CONF="$FE_RUN/conf.new" fe_manifest iris "$vip" "main:0:$m" "canary:100:$c"
	mv "$conf" "$FE_RUN/conf.old" && mv "$FE_RUN/conf.new" "$conf"
	sleep 1
	fe_burst "$vip" 200 "$FE_RUN/swap.json"
	fe_only "$FE_RUN/swap.json" canary "after mv conf conf.old; mv conf.new conf (0/100): "
	fe_manifest iris "$vip" "main:100:$m" "canary:0:$c"
	FE_CONF="$FE_RUN/conf.old" fe_manifest iris "$vip" "main:0:$m" "canary:100:$c"
	sleep 1
	fe_burst "$vip" 200 "$FE_RUN/swap-edit.json"
	fe_only "$FE_RUN/swap-edit.json" main "an edit in the new directory (100/0; the old one says 0/100): "

	rm -rf "$conf"
	sleep 1
	kill -HUP "$FERRYD_PID"
	sleep 1
	kill -0 "$FERRYD_PID" || fe_fail "ferryd exited after its directory was removed"
	fe_burst "$vip" 200 "$FE_RUN/gone.json"
	fe_only "$FE_RUN/gone.json" main "directory removed (and SIGHUP): the last state should stay: "
	errs=$(fe_metric ferry_config_errors) || fe_fail "ferryd's /metrics does not answer"
	[ "$errs" = 1 ] || fe_fail "directory removed: ferry_config_errors is $errs, want 1"
	nsenter --net="/run/netns/$FE_NODE" "$FERRY_BUILD/ferryctl" --pin-path "$FE_PIN" status \
		>"$FE_RUN/gone-status.txt" 2>&1
	grep -q "No such file or directory" "$FE_RUN/gone-status.txt" ||
		fe_fail "directory removed: ferryctl status does not say so: $(grep -i error "$FE_RUN/gone-status.txt" | head -3)"
	mkdir "$conf"
	fe_manifest iris "$vip" "main:0:$m" "canary:100:$c"
	sleep 1
	fe_burst "$vip" 200 "$FE_RUN/recreated.json"
	fe_only "$FE_RUN/recreated.json" canary "directory created again (0/100): "
	errs=$(fe_metric ferry_config_errors) || fe_fail "ferryd's /metrics does not answer"
	[ "$errs" = 0 ] || fe_fail "directory back: ferry_config_errors is $errs, want 0"

	# A ConfigMap volume, as the kubelet writes it: files are links through
	# ..data, which is swapped to a new ..TIMESTAMP directory in one rename.
	cm="$FE_RUN/conf.cm"
	mkdir -p "$cm/..v1"
	cp "$conf"/* "$cm/..v1/"
	FE_CONF="$cm/..v1" fe_manifest iris "$vip" "main:100:$m" "canary:0:$c"
	ln -s ..v1 "$cm/..data"
	for f in "$cm/..v1"/*; do ln -s "..data/$(basename "$f")" "$cm/$(basename "$f")"; done
	mv "$conf" "$FE_RUN/conf.old2" && mv "$cm" "$conf"
	sleep 1
	fe_burst "$vip" 200 "$FE_RUN/cm1.json"
	fe_only "$FE_RUN/cm1.json" main "a ConfigMap-style directory renamed into place (100/0): "
	mkdir "$conf/..v2"
	cp "$conf/..v1"/* "$conf/..v2/"
	FE_CONF="$conf/..v2" fe_manifest iris "$vip" "main:0:$m" "canary:100:$c"
	ln -s ..v2 "$conf/..data_tmp" && mv -T "$conf/..data_tmp" "$conf/..data" && rm -rf "$conf/..v1"
	sleep 1
	fe_burst "$vip" 200 "$FE_RUN/cm2.json"
	fe_only "$FE_RUN/cm2.json" canary "the ConfigMap's ..data swapped (0/100): "
	dirs="; directory swapped, removed (state kept, 1 config error), created again, ConfigMap ..data swap followed"
fi
fe_pass "$share; 0/100 and 100/0 followed; $(fe_json "$ka" 'd["ok"]') keep-alive requests, 0 failed; no sync for 5 non-manifest files$dirs"
