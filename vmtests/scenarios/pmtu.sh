#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# pmtu: path MTU discovery through the VIP. A router namespace sits between
# the client and the node; its link to the client has MTU 1400, every other
# link 1500. A 1 MB HTTP response through the VIP must arrive, over IPv4 and
# IPv6: the backend's 1500-byte segments only shrink if the router's "frag
# needed" / "packet too big" (sent to the VIP, quoting VIP -> client) reaches
# the backend translated to quote backend -> client (issue 12).
#
# Why a router: a bpf_redirect skips the sender's MTU check and a veth checks
# only the receiver's, so the smaller MTU must be on a link that a real
# forwarding hop enforces. The library's client namespace is that router
# here; the real client hangs behind it.
#
#   client (198.18.2.2) --1400-- router (198.18.1.2) --1500-- node --1500-- backends
#   (1400 on the router's end of the client link; the client's end is 1500)
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init pmtu pmtu
fe_require_root
fe_require_ferryd
command -v curl >/dev/null || fe_skip "needs curl"
vip4=198.18.100.30:8000
vip6='[2001:db8:100::30]:8000'
size=$((1024 * 1024))

fe_topo_create 2
router=$FE_CLIENT
client="$FE_PFX-c2"
ip netns add "$client" || fe_fail "ip netns add $client"
ip -n "$client" link set lo up
fe_ns "$client" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
fe_ns "$router" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# The client's end stays at 1500, so that its SYN advertises an MSS of 1460
# and only the router's egress (1400) is too small: what a client behind a
# tunnel or a smaller WAN hop sees.
ip -n "$router" link add "fe${FE_TAG}-rc" mtu 1400 type veth peer name "fe${FE_TAG}-cr" \
	netns "$client" || fe_fail "veth router-client"
ip -n "$router" addr add 198.18.2.1/24 dev "fe${FE_TAG}-rc"
ip -n "$router" addr add 2001:db8:2::1/64 dev "fe${FE_TAG}-rc" nodad
ip -n "$router" link set "fe${FE_TAG}-rc" up
ip -n "$client" addr add 198.18.2.2/24 dev "fe${FE_TAG}-cr"
ip -n "$client" addr add 2001:db8:2::2/64 dev "fe${FE_TAG}-cr" nodad
ip -n "$client" link set "fe${FE_TAG}-cr" up
ip -n "$client" route add default via 198.18.2.1
ip -n "$client" -6 route add default via 2001:db8:2::1
# Across a wire, as the library's client: full checksums.
fe_ns "$client" ethtool -K "fe${FE_TAG}-cr" tx off >/dev/null 2>&1 || fe_fail "ethtool tx off"
ip -n "$FE_NODE" route add 198.18.2.0/24 via 198.18.1.2
ip -n "$FE_NODE" -6 route add 2001:db8:2::/64 via 2001:db8:1::2

# A backend that answers GET /small with 2 bytes (readiness) and any other
# GET with $size bytes, on IPv4 and IPv6.
for i in 1 2; do
	ip netns exec "$(fe_backend_ns "$i")" "$FE_PY" -c '
import http.server, socket, sys
big = b"x" * int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"ok" if self.path == "/small" else big
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
S(("::", 9000), H).serve_forever()
' "$size" >>"$FE_RUN/server-$i.log" 2>&1 &
	FE_PIDS+=($!)
done
fe_servers_wait || fe_fail "servers did not start"
fe_manifest big "$vip4" "main:100:$(fe_backend_ip 1),$(fe_backend_ip 2)"
fe_manifest big6 "$vip6" "main:100:$(fe_backend_ip6 1),$(fe_backend_ip6 2)"
fe_ferryd_start

# fetch URL: prints the bytes received in at most 10 s (a stalled transfer times out).
fetch() {
	fe_ns "$client" curl -sg -o /dev/null -w '%{size_download}' --max-time 10 "$1" 2>/dev/null
}
small_ok() { fe_ns "$client" curl -sgf -o /dev/null --max-time 1 "$1" 2>/dev/null; }
fails=""
for target in "$vip4" "$vip6"; do
	fe_wait 10 small_ok "http://$target/small" || fe_fail "VIP $target does not answer within 10 s"
	for try in 1 2 3; do
		got=$(fetch "http://$target/")
		fe_log "$target try $try: ${got:-0} of $size bytes"
		[ "${got:-0}" = "$size" ] || fails+=" $target#$try(${got:-0})"
	done
done
[ -z "$fails" ] || fe_fail "1 MB responses that stalled:$fails; ICMP counters: $(fe_metric ferry_datapath_events_total event=icmp_fwd) forwarded"
fe_pass "1 MB through a 1400-byte hop: 3 of 3 over IPv4 and over IPv6 ($(fe_metric ferry_datapath_events_total event=icmp_fwd) ICMP errors translated to backends)"
