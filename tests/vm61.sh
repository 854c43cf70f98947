#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Suite for tests/run: ferry's BPF tests on Debian 12's 6.1 LTS kernel in a
# QEMU VM (vmtests/qemu/run-6.1, docs/kernels.md). Passes run-6.1's
# PASS/FAIL/SKIP lines through. When the VM cannot be had at all (no qemu, no
# kernel package, no apt archive) it says SKIP vm61/all loudly: never a silent
# pass.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
run=$top/vmtests/qemu/run-6.1

skip_all() {
	echo "SKIP vm61/all: $*"
	echo "vm61: *** SKIPPED the whole 6.1 VM run: $* ***" >&2
	exit 0
}

[ -x "$run" ] || skip_all "$run missing or not executable"
command -v qemu-system-x86_64 >/dev/null ||
	skip_all "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
command -v apt-get >/dev/null || [ -d "${VM_CACHE:-$top/build/vm}" ] ||
	skip_all "no apt-get to fetch Debian's 6.1 kernel and no cached kernel in build/vm"

# tests/run has its own summary line; drop run-6.1's so that it is not read
# as a test. The exit status still says whether anything failed.
"$run" | grep -v -E '^[0-9]+ passed, [0-9]+ failed'
exit "${PIPESTATUS[0]}"
