#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# ipv6: an IPv6 VIP [2001:db8:100::10]:8000 split 70/30 across IPv6 backends:
# 2,000 new connections, canary share within 4.5 sd of 30%, no failure, replies
# come from the VIP (the client's socket only accepts those).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init ipv6 ipv6
fe_require_root
fe_require_ferryd
vip='[2001:db8:100::10]:8000'
fe_std_backends
fe_manifest iris "$vip" "main:70:$(fe_backend_ip6 1),$(fe_backend_ip6 2)" "canary:30:$(fe_backend_ip6 3)"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"
out="$FE_RUN/split.json"
fe_loadgen --target "$vip" --close --connections 2000 --concurrency 32 >"$out" ||
	fe_fail "load client failed"
fe_log "$(fe_json "$out" '{k: d[k] for k in ("requests", "errors", "backends")}')"
[ "$(fe_json "$out" 'd["error_total"]')" -eq 0 ] || fe_fail "failed requests: $(fe_json "$out" 'd["errors"]')"
[ "$(fe_json "$out" 'min(d["backends"].get(b, 0) for b in ("main-0", "main-1"))')" -gt 0 ] ||
	fe_fail "a main backend got nothing: $(fe_json "$out" 'd["backends"]')"
share=$(fe_share_check "$out" canary 0.30) || fe_fail "$share"
fe_pass "$share"
