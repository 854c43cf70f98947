#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# table_size: `ferryd --table-size 1000` sets the floor of every predictor's
# Maglev table to 1009 slots (1000 rounded up to a prime; without it 251, and
# a predictor gets 100-200 slots per backend above the floor). Read back from
# the pins, not from ferryd: the service entry's table_size is 1009, each
# predictor's pinned table (tables/PREDICTOR_ID) has 1009 slots that name
# only that predictor's backends, evenly, and the predictor stage
# (ferry_selectors) holds main 800000 and canary 200000 ppm. Then traffic
# still splits right: over 2,400 new connections the canary's share is
# within 4.5 sd of 20%, and no request fails.
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
sel = [btf(e)["value"] for e in bpftool("map", "dump", "pinned", os.path.join(pin, "ferry_selectors"))
       if btf(e)["key"] == svc["id"]]
if len(sel) != 1:
    fail("ferry_selectors has no entry for service %d" % svc["id"])
sel = sel[0]
weights, owners = {}, {}
for p in sel["preds"][:sel["npredictors"]]:
    pid = p["predictor_id"]
    table = os.path.join(pin, "tables", str(pid))
    cells = [bytes(int(x, 16) for x in r["value"]) if not isinstance(r["value"], int)
             else r["value"].to_bytes(8, "little")
             for r in bpftool("map", "dump", "pinned", table)]
    tsize, n = struct.unpack("<II", cells[0])
    if tsize != size:
        fail("%s: %d slots, expected %d" % (table, tsize, size))
    ids = [struct.unpack("<II", cells[2 + (size + 3) // 4 + i // 2])[i % 2] for i in range(n)]
    slots = [struct.unpack("<4H", cells[2 + s // 4])[s % 4] for s in range(size)]
    addrs = []
    for bid in ids:
        key = [hex(b) for b in struct.pack("<I", bid)]
        be = btf(bpftool("map", "lookup", "pinned", os.path.join(pin, "ferry_backends"), "key", *key))["value"]
        addrs.append(str(ipaddress.ip_address(struct.pack("<I", be["addr"][0]))))
    counts = [slots.count(i) for i in range(n)]
    if max(counts) - min(counts) > 1 or sum(counts) != size:
        fail("%s: uneven slots %s" % (table, counts))
    owners[tuple(sorted(addrs))] = p["weight"]
    sys.stderr.write("%s: %d slots, backends %s, %s slots each, weight %d ppm\n" % (table, size, addrs, counts, p["weight"]))
want = {tuple(sorted(main)): 800000, (canary,): 200000}
if owners != want:
    fail("predictor stage %r, expected %r" % (owners, want))
print("%.6f" % 0.2)
PY
) || fe_fail "$weight"
fe_log "pinned tables: $size slots each, canary's weight $weight"
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
fe_pass "tables of $size slots; $share"
