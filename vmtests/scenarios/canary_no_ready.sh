#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# canary_no_ready: 90/10, but the canary has no ready backend: in one
# deployment its only endpoint is not ready, in another its EndpointSlice is
# empty. All new connections go to main, none fails (the canary's share is
# moved, not dropped).
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init canary_no_ready cnr
fe_require_root
fe_require_ferryd
vip1=198.18.100.10:8000
vip2=198.18.100.11:8000
m="$(fe_backend_ip 1),$(fe_backend_ip 2)"
fe_std_backends
fe_manifest iris "$vip1" "main:90:$m" "canary:10:$(fe_backend_ip 3)@unready"
fe_manifest wine "$vip2" "main:90:$m" "canary:10:"
fe_ferryd_start
fe_wait 10 fe_vip_ok "$vip1" || fe_fail "VIP $vip1 does not answer within 10 s"
fe_wait 10 fe_vip_ok "$vip2" || fe_fail "VIP $vip2 does not answer within 10 s"
fe_burst "$vip1" 1000 "$FE_RUN/unready.json"
fe_only "$FE_RUN/unready.json" main "canary unready: "
fe_burst "$vip2" 1000 "$FE_RUN/empty.json"
fe_only "$FE_RUN/empty.json" main "canary slice empty: "
fe_pass "2 x 1,000 new connections, all to main, 0 failed"
