#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# udp: a UDP VIP 198.18.100.20:5353/udp split 80/20. 2,000 datagrams, each
# from a new socket (a new flow): every one is answered, the answers come from
# the VIP address and port (not the backend's), and the canary's share is
# within 4.5 sd of 20%.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init udp udp
fe_require_root
fe_require_ferryd
vip=198.18.100.20:5353
fe_std_backends --udp
fe_manifest dns "$vip/udp" "main:80:$(fe_backend_ip 1),$(fe_backend_ip 2)" "canary:20:$(fe_backend_ip 3)"
fe_ferryd_start
udp_ok() {
	fe_loadgen --target "$vip" --udp --connections 1 --concurrency 1 --timeout 1 2>/dev/null |
		grep -q '"ok": 1'
}
fe_wait 10 udp_ok || fe_fail "UDP VIP $vip does not answer within 10 s"
out="$FE_RUN/udp.json"
fe_loadgen --target "$vip" --udp --connections 2000 --concurrency 16 --timeout 2 >"$out" ||
	fe_fail "load client failed"
fe_log "$(fe_json "$out" '{k: d[k] for k in ("requests", "errors", "backends")}')"
[ "$(fe_json "$out" 'd["error_total"]')" -eq 0 ] ||
	fe_fail "datagrams lost or answered from the wrong address: $(fe_json "$out" 'd["errors"]')"
share=$(fe_share_check "$out" canary 0.20) || fe_fail "$share"
fe_pass "$share"
