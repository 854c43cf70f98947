#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Prints the container engine command for `make image` and the image test:
# docker when a Docker daemon answers, podman (daemonless) otherwise. Exits 1
# with the reason on stderr when there is neither.
#
# podman runs with runc and cgroupfs: on hosts with hybrid cgroups (v1 with a
# v2 hierarchy beside it, as on the CI machines) crun refuses to start
# containers and there is no systemd to manage scopes.
set -euo pipefail

case "${FERRY_ENGINE:-}" in
docker | podman) want=$FERRY_ENGINE ;;
"") want="" ;;
*)
	echo "FERRY_ENGINE=$FERRY_ENGINE: want docker or podman" >&2
	exit 1
	;;
esac

if [ "$want" != podman ] && command -v docker >/dev/null &&
	timeout 10 docker info >/dev/null 2>&1; then
	echo docker
	exit 0
fi
if [ "$want" = docker ]; then
	echo "FERRY_ENGINE=docker, but no Docker daemon answers" >&2
	exit 1
fi
if ! command -v podman >/dev/null; then
	echo "no Docker daemon answers and podman is not installed (make deps)" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	# The image test needs root anyway (netns, bpffs); rootless storage would
	# hold a second copy of every image.
	echo "podman: run as root" >&2
	exit 1
fi
cmd=(podman)
if command -v runc >/dev/null; then
	cmd+=(--runtime runc --cgroup-manager=cgroupfs)
fi
echo "${cmd[*]}"
