#!/usr/bin/env bash
# Fuzz suite: builds the libFuzzer targets (fuzz/*.c, `make fuzz-build`) and
# runs each for FUZZ_SECONDS (default 10, `make fuzz`: 60) from its seed
# corpus fuzz/corpus/TARGET; inputs it finds go to $FERRY_BUILD/fuzz/corpus.
# Prints "PASS fuzz/TARGET" or "FAIL fuzz/TARGET" (a crash, a sanitizer
# report, a leak, a timeout or a broken invariant; the input that did it is
# kept in $FERRY_BUILD/fuzz/artifacts/TARGET/) and exits non-zero on a FAIL.
#
# The packet target needs root and a network namespace of a fixed name: it
# runs under flock $FUZZ_LOCK when that is set (`make fuzz` sets it); callers
# of tests/run already hold the root lock, so the suite does not take it.
#
# Usage: tests/fuzz.sh [TARGET...]
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILD:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
secs=${FUZZ_SECONDS:-10}
lock=${FUZZ_LOCK:-}

# A sub-make of its own: SAN= or other variables of an outer make must not leak in.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$top" --no-print-directory \
	BUILD="$build" fuzz-build; then
	echo "FAIL fuzz/build"
	exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for src in "$top"/fuzz/*.c; do
		targets+=("$(basename "$src" .c)")
	done
fi

failed=0
TIMEFORMAT='%U %S'
for t in "${targets[@]}"; do
	bin="$build/fuzz/$t" work="$build/fuzz/corpus/$t" art="$build/fuzz/artifacts/$t"
	log="$build/fuzz/$t.log"
	if [ ! -x "$bin" ] || [ ! -d "$top/fuzz/corpus/$t" ]; then
		echo "FAIL fuzz/$t: no $bin or no seed corpus fuzz/corpus/$t"
		failed=1
		continue
	fi
	run=()
	if [ "$t" = pkt ]; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "SKIP fuzz/$t: needs root (BPF test runs in a network namespace)"
			continue
		fi
		[ -n "$lock" ] && run=(flock "$lock")
		# A crash ends the process without its exit handlers: the namespace
		# is removed here, still under the lock.
		run+=(sh -c '"$@"; rc=$?; ip netns del fz-pkt 2>/dev/null; exit $rc' sh)
	fi
	mkdir -p "$work" "$art"
	# -close_fd_mask=3: the parsers' own messages would drown the run;
	# sanitizer reports still reach the log.
	{ time "${run[@]}" "$bin" -max_total_time="$secs" -timeout=30 -close_fd_mask=3 \
		-print_final_stats=1 -artifact_prefix="$art/" "$work" "$top/fuzz/corpus/$t" \
		>"$log" 2>&1; } 2>"$log.time"
	rc=$?
	read -r usr sys <"$log.time"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		echo "PASS fuzz/$t (${runs:-?} inputs, ${secs}s, cpu ${usr}+${sys}s)"
		grep -h '^fuzz/pkt: [0-9]* runs' "$log" | sed 's/^/    /' # what the checks saw
	else
		echo "FAIL fuzz/$t: exit $rc after ${runs:-?} inputs; log $log, input in $art/"
		grep -m2 -E 'invariant broken|ERROR: |SUMMARY: ' "$log" | sed 's/^/    /'
		failed=1
	fi
done
exit "$failed"
