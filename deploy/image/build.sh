#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# `make image`: builds deploy/Dockerfile into the image the DaemonSet names,
# with docker or podman (deploy/image/engine.sh), from base images made
# locally by deploy/image/base.sh, never pulled.
#
# The build context is the repository's source files (tracked and new, not
# ignored ones): build/ (objects, the base tarball) and .git stay out without
# a .dockerignore, and what is built is what `git status` shows.
#
# Usage: deploy/image/build.sh BUILD_DIR
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
image=$(sed -n 's/^# IMAGE: //p' "$top/deploy/Dockerfile")
[ -n "$image" ] || {
	echo "deploy/Dockerfile has no '# IMAGE:' line" >&2
	exit 1
}

engine=$("$top/deploy/image/engine.sh")
"$top/deploy/image/base.sh" "$engine" "$build/image"

ctx="$build/image/context"
rm -rf "$ctx"
mkdir -p "$ctx"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf -) | tar -C "$ctx" -xf -

args=(build -f "$ctx/deploy/Dockerfile" -t "$image" --network host)
case "$engine" in
podman*)
	# Never from a registry: the bases are local; a missing one is an error.
	# podman asks for higher rlimits than runc may set on these hosts
	# ("error setting rlimit type 6/7: operation not permitted"); explicit
	# ones within this shell's limits work.
	args+=(--pull=never --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=4096:4096")
	;;
esac
echo "  IMAGE     $image ($engine)"
# shellcheck disable=SC2086 # engine is a command with its options
$engine "${args[@]}" "$ctx" >"$build/image/build.log" 2>&1 || {
	tail -n 30 "$build/image/build.log" >&2
	echo "image build failed; full log: $build/image/build.log" >&2
	exit 1
}
rm -rf "$ctx"
$engine image inspect --format '{{.Size}}' "$image" | awk -v i="$image" '{printf "  IMAGE     %s: %.1f MB\n", i, $1 / 1e6}'
