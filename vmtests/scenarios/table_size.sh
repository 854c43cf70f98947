#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# table_size: `ferryd --table-size 1000` builds every service's lookup table
# with 1009 slots (1000 rounded up to a prime). Read back from the pins, not
# from ferryd: the service entry's table_size and the pinned inner table's
# max_entries are 1009, its 1009 slots name only this deployment's backends,
# and the canary's slots are its 20% of 1009 (within one slot of rounding).
# Then traffic still splits right: over 2,400 new connections the canary's
# share is within 3 sd of its slots / 1009, and no request fails.
# shellcheck source=SCRIPTDIR/../lib/topo.sh
. "$(dirname "$0")/../lib/topo.sh"
fe_init table_size tsz
fe_require_root
fe_require_ferryd
vip=198.18.100.50:8000
size_arg=1000
size=1009 # the next prime
n=${FE_SPLIT_CONNECTIONS:-2400}
weight=0.2

fe_std_backends
fe_manifest iris "$vip" "main:80:$(fe_backend_ip 1),$(fe_backend_ip 2)" \
	"canary:20:$(fe_backend_ip 3)"
fe_ferryd_start --table-size "$size_arg"
fe_wait 10 fe_vip_ok "$vip" || fe_fail "VIP $vip does not answer within 10 s"

if [ "$FE_LB" = ferry ]; then
	command -v bpftool >/dev/null || fe_fail "needs bpftool (make deps)"
	# Prints the canary's share of the table (slots / size) or why the table is wrong.
	weight=$("$FE_PY" - "$FE_PIN" "$vip" "$size" "$(fe_backend_ip 3)" \
		"$(fe_backend_ip 1),$(fe_backend_ip 2)" <<'PY'
import ipaddress, json, os, struct, subprocess, sys
pin, vip, size, canary, main = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].split(",")

def bpftool(*args):
    return json.loads(subprocess.run(["bpftool", "-j", *args], check=True, capture_output=True, text=True).stdout)

def btf(e):
    # Maps with BTF (ferry's own): the typed view is under "formatted".
    return e.get("formatted", e)

def u32(v):
    return v if isinstance(v, int) else int.from_bytes(bytes(int(x, 16) for x in v), "little")

def fail(why):
    print(why)
    sys.exit(1)

addr, port = vip.rsplit(":", 1)
svc = [btf(e)["value"] for e in bpftool("map", "dump", "pinned", os.path.join(pin, "ferry_services"))
       if btf(e)["value"]["id"] and btf(e)["key"]["port"] and
       ipaddress.ip_address(struct.pack("<I", btf(e)["key"]["addr"][0])) == ipaddress.ip_address(addr)]
if len(svc) != 1:
    fail("ferry_services has %d entries for %s" % (len(svc), vip))
svc = svc[0]
if svc["table_size"] != size:
    fail("ferry_services[%s].table_size is %d, expected %d" % (vip, svc["table_size"], size))
table = os.path.join(pin, "tables", str(svc["id"]))
show = bpftool("map", "show", "pinned", table)
if show.get("max_entries") != size or show.get("type") != "array":
    fail("%s: %s %s entries, expected an array of %d" % (table, show.get("type"), show.get("max_entries"), size))
slots = [u32(r["value"]) for r in bpftool("map", "dump", "pinned", table)]
if len(slots) != size:
    fail("%s: %d slots dumped, expected %d" % (table, len(slots), size))
owner = {}
for bid in set(slots):
    key = [hex(b) for b in struct.pack("<I", bid)]
    be = btf(bpftool("map", "lookup", "pinned", os.path.join(pin, "ferry_backends"), "key", *key))["value"]
    owner[bid] = str(ipaddress.ip_address(struct.pack("<I", be["addr"][0])))
counts = {}
for s in slots:
    counts[owner.get(s, "none")] = counts.get(owner.get(s, "none"), 0) + 1
if set(counts) != set(main) | {canary}:
    fail("%s: slots name %s, expected exactly %s" % (table, counts, sorted(set(main) | {canary})))
if abs(counts[canary] - 0.2 * size) > 1:
    fail("%s: canary has %d of %d slots, expected 20%% (%.1f)" % (table, counts[canary], size, 0.2 * size))
print("%.6f" % (counts[canary] / size))
sys.stderr.write("%s: %d slots, by backend %s\n" % (table, size, counts))
PY
) || fe_fail "$weight"
fe_log "pinned table: $size slots, canary's share $weight"
fi

out="$FE_RUN/split.json"
fe_loadgen --target "$vip" --close --connections "$n" --concurrency 32 \
	--timeout "${FE_LOADGEN_TIMEOUT:-3}" >"$out" || fe_fail "load client failed"
[ "$(fe_json "$out" 'd["error_total"]')" -eq 0 ] ||
	fe_fail "failed requests: $(fe_json "$out" 'd["errors"]')"
[ "$(fe_json "$out" 'd["ok"]')" -ge 2000 ] || fe_fail "fewer than 2,000 answered connections"
[ "$(fe_json "$out" 'min(d["backends"].get(b, 0) for b in ("main-0", "main-1"))')" -gt 0 ] ||
	fe_fail "a main backend got nothing: $(fe_json "$out" 'd["backends"]')"
share=$(fe_share_check "$out" canary "$weight")
rc=$?
echo "$share" >&2
[ $rc -eq 0 ] || fe_fail "$share"
fe_pass "table of $size slots; $share"
