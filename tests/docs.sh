#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The docs against the code they describe (unprivileged, no network):
#   docs/abi        every ABI number quoted in docs/, README.md and examples/
#                   ("ABI N", "abi_version": N) is FERRY_ABI_VERSION of
#                   maps/ferry_maps.h
#   docs/ferryd_options  docs/configuration.md's copy of `ferryd --help` is
#                   the binary's, and every --option the docs give ferryd exists
#   docs/known_issues    the "Known issues" of docs/operations.md names only
#                   tests that exist in tests/ferryctl.sh
# Prints PASS/FAIL lines; exits non-zero on any FAIL.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILD:-$top/build}
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

verdict() { # NAME PROBLEMS
	if [ -z "$2" ]; then
		echo "PASS docs/$1"
	else
		echo "FAIL docs/$1: $2"
		failed=1
	fi
}

abi=$(sed -n 's/^#define FERRY_ABI_VERSION \([0-9][0-9]*\).*/\1/p' "$top/maps/ferry_maps.h")
bad=""
if [ -z "$abi" ]; then
	bad="no FERRY_ABI_VERSION in maps/ferry_maps.h"
else
	while IFS= read -r hit; do
		n=$(grep -oE '(ABI |"?abi_version"?:? *)[0-9]+' <<<"${hit#*:*:}" | grep -oE '[0-9]+$')
		for v in $n; do
			[ "$v" = "$abi" ] || bad+=" [${hit%%:*}:$(cut -d: -f2 <<<"$hit") says $v]"
		done
	done < <(grep -rnE '\bABI [0-9]+|"?abi_version"?:? *[0-9]+' "$top/docs" "$top/README.md" \
		"$top/examples" 2>/dev/null | sed "s|^$top/||")
fi
verdict abi "${bad:+ABI quoted differs from FERRY_ABI_VERSION $abi:$bad}"

bad=""
if [ ! -x "$build/ferryd" ]; then
	bad="$build/ferryd not built (make all)"
else
	"$build/ferryd" --help >"$tmp/help" 2>&1 || bad="ferryd --help exited $?"
	sed -n '/^<!-- ferryd --help -->$/,/^<!-- end ferryd --help -->$/p' \
		"$top/docs/configuration.md" | sed '1,2d;$d' | sed '$d' >"$tmp/doc"
	if [ -z "$bad" ] && ! cmp -s "$tmp/help" "$tmp/doc"; then
		bad="docs/configuration.md's copy of ferryd --help differs from the binary's: $(diff "$tmp/doc" "$tmp/help" | grep '^[<>]' | head -3 | tr '\n' ' ')"
	fi
	help_opts=$(grep -oE '^ +--[a-z][a-z0-9-]+' "$tmp/help" | tr -d ' ' | sort -u)
	[ -n "$help_opts" ] || bad+=" [ferryd --help lists no options]"
	# Options the docs and the README pass to ferryd on a command line.
	for o in $(grep -rhoE 'ferryd( +[^`|]*)?' "$top/docs" "$top/README.md" |
		grep -oE ' --[a-z][a-z0-9-]+' | tr -d ' ' | sort -u); do
		[ "$o" = --help ] || grep -qxF -- "$o" <<<"$help_opts" || bad+=" [docs give ferryd $o, which its --help does not list]"
	done
fi
verdict ferryd_options "$bad"

bad=""
known=$(sed -n '/^## Known issues/,/^## /p' "$top/docs/operations.md")
if [ -z "$known" ]; then
	bad="docs/operations.md has no Known issues section"
else
	for tname in $(grep -oE '^\| `[a-z_]+` \|' <<<"$known" | tr -d '|` '); do
		grep -q "^test_$tname()" "$top/tests/ferryctl.sh" ||
			bad+=" [$tname is listed but tests/ferryctl.sh has no test_$tname]"
	done
fi
verdict known_issues "$bad"

exit $failed
