#!/usr/bin/env bash
# Checks the shipped Prometheus rules and Grafana dashboard:
#   promtool/check_rules     promtool check rules deploy/prometheus/rules.yml
#   promtool/test_rules      promtool test rules deploy/prometheus/tests.yml
#   grafana/json_valid       deploy/grafana/ferry.json parses (python3 -m json.tool)
#   metrics/names_exported   every ferry_* name in the dashboard and the rules is a family
#                            ferryd exports (HELP lines of test_metrics' sample rendering),
#                            every ferry:* name is recorded in rules.yml, and
#                            docs/metrics.md documents every exported family
# Prints PASS/FAIL/SKIP lines; exits non-zero on any FAIL.
set -uo pipefail

top=${FERRY_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
build=${FERRY_BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
rules="$top/deploy/prometheus/rules.yml"
tests="$top/deploy/prometheus/tests.yml"
dash="$top/deploy/grafana/ferry.json"
docs="$top/docs/metrics.md"

tmp=$(mktemp -d /tmp/ferry-fm-promtool.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

failed=0
pass() { echo "PASS $1"; }
fail() {
	echo "FAIL $1"
	shift
	[ $# -gt 0 ] && echo "    $*" >&2
	failed=1
}
skip() {
	echo "SKIP $1"
	shift
	echo "    SKIPPED: $*" >&2
}

if command -v promtool >/dev/null 2>&1; then
	if promtool check rules "$rules" >"$tmp/check.out" 2>&1 && ! grep -qi 'warn\|lint' "$tmp/check.out"; then
		pass promtool/check_rules
	else
		cat "$tmp/check.out" >&2
		fail promtool/check_rules "promtool check rules $rules failed"
	fi
	# tests.yml names rules.yml relative to itself
	if (cd "$(dirname "$tests")" && promtool test rules "$(basename "$tests")") >"$tmp/test.out" 2>&1; then
		pass promtool/test_rules
	else
		cat "$tmp/test.out" >&2
		fail promtool/test_rules "promtool test rules $tests failed"
	fi
else
	skip promtool/check_rules "promtool not installed (apt install prometheus): rules NOT checked"
	skip promtool/test_rules "promtool not installed (apt install prometheus): rule tests NOT run"
fi

if python3 -m json.tool "$dash" >/dev/null 2>"$tmp/json.err"; then
	pass grafana/json_valid
else
	cat "$tmp/json.err" >&2
	fail grafana/json_valid "$dash is not valid JSON"
fi

sample="$tmp/sample.prom"
if [ ! -x "$build/tests/test_metrics" ]; then
	skip metrics/names_exported "$build/tests/test_metrics not built (make BUILD=... tests/test_metrics): cannot list exported families"
elif ! FERRY_METRICS_DUMP="$sample" "$build/tests/test_metrics" test_render >"$tmp/render.out" 2>&1 ||
	[ ! -s "$sample" ]; then
	cat "$tmp/render.out" >&2
	fail metrics/names_exported "test_metrics did not produce a sample rendering"
else
	if python3 - "$sample" "$rules" "$dash" "$docs" <<'PY'; then
import json, re, sys

sample, rules, dash, docs = sys.argv[1:5]
families = set()
for line in open(sample):
    if line.startswith("# HELP "):
        families.add(line.split()[2])

def exported(name):
    if name in families:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return True
    return False

rules_text = open(rules).read()
recorded = set(re.findall(r"^\s*-?\s*record:\s*(\S+)", rules_text, re.M))
problems = []

def check(text, where):
    for name in sorted(set(re.findall(r"\bferry_[a-z0-9_]+", text))):
        if not exported(name):
            problems.append(f"{where}: {name} is not an exported family")
    for name in sorted(set(re.findall(r"\bferry:[a-z0-9_:]+", text))):
        if name not in recorded:
            problems.append(f"{where}: {name} is not recorded in rules.yml")

# only the queries of the dashboard, not its prose
exprs = []
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "definition") and isinstance(v, str):
                exprs.append(v)
            elif k == "query" and isinstance(v, (str, dict)):
                exprs.append(v if isinstance(v, str) else v.get("query", ""))
            else:
                walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(json.load(open(dash)))
if not exprs:
    problems.append("dashboard has no queries")
check("\n".join(exprs), "ferry.json")
exprs_rules = "\n".join(re.findall(r"expr:\s*(?:\|\n)?((?:.*\n)*?)(?=\s*(?:for|labels|- record|- alert|annotations):|\Z)", rules_text))
check(exprs_rules, "rules.yml")

try:
    doc = open(docs).read()
    for f in sorted(families):
        if f"`{f}`" not in doc:
            problems.append(f"docs/metrics.md: {f} is not documented")
except OSError as e:
    problems.append(f"docs/metrics.md: {e}")

for p in problems:
    print("    " + p, file=sys.stderr)
print(f"    {len(families)} exported families, {len(recorded)} recording rules, {len(exprs)} dashboard queries", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
		pass metrics/names_exported
	else
		fail metrics/names_exported "metric names above do not match what ferryd exports"
	fi
fi

exit "$failed"
