#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Makes the base images deploy/Dockerfile names (debian:bookworm for the build
# stage, debian:bookworm-slim for the runtime stage) from the Debian archive,
# so that no image is ever pulled from a registry. One minbase debootstrap
# serves both names: the build stage adds its compilers with apt-get anyway,
# and a second, "fuller" base would only add minutes to a cold build.
#
# The rootfs gets the machine's own Debian apt sources, so the Dockerfile's
# apt-get uses the same mirror (and snapshot) as the host.
#
# Usage: deploy/image/base.sh ENGINE CACHE_DIR
#   ENGINE     the container command (e.g. "podman --runtime runc ...", "docker")
#   CACHE_DIR  where the rootfs tarball is kept (build/image); reused when present
set -euo pipefail

engine=$1
cache=$2
suite=bookworm
names=(debian:bookworm debian:bookworm-slim)

have_all=1
for n in "${names[@]}"; do
	$engine image exists "$n" 2>/dev/null || $engine image inspect "$n" >/dev/null 2>&1 || have_all=0
done
[ "$have_all" = 1 ] && exit 0

mkdir -p "$cache"
tarball="$cache/debian-$suite-minbase.tar"
if [ ! -s "$tarball" ]; then
	command -v debootstrap >/dev/null || {
		echo "base.sh: debootstrap is missing (make deps)" >&2
		exit 1
	}
	# The mirror the machine itself uses (first Debian URI in its sources).
	mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ && /debian\.org\/debian\/?$/ {print $2; exit}')
	[ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
		awk '$2 ~ /\/debian\/?$/ {print $2; exit}')
	mirror=${mirror:-http://deb.debian.org/debian}
	root=$(mktemp -d "$cache/rootfs.XXXXXX")
	trap 'rm -rf "$root" "$tarball.tmp"' EXIT
	echo "  DEBOOTSTRAP $suite minbase from $mirror"
	debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
		tail -n 20 "$cache/debootstrap.log" >&2
		exit 1
	}
	# The machine's own apt sources: only the Debian archive entries (a
	# third-party repository's keyring is not in the rootfs).
	rm -f "$root/etc/apt/sources.list"
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && grep -q 'debian\.org' "$f" || continue
		mkdir -p "$root/etc/apt/sources.list.d"
		cp "$f" "$root${f}"
	done
	# The same Acquire settings (e.g. a snapshot archive's Valid-Until).
	for f in /etc/apt/apt.conf.d/*; do
		grep -qs '^Acquire::' "$f" && cp "$f" "$root/etc/apt/apt.conf.d/"
	done
	# As in Debian's own images: apt keeps no package cache and no .deb
	# (80 MB in the runtime image otherwise), dpkg installs no manuals,
	# documentation or translations (50 MB); copyright files stay.
	cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
CONF
	cat >"$root/etc/dpkg/dpkg.cfg.d/excludes" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CONF
	find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
		"$root"/usr/share/lintian/*
	rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
		"$root"/var/log/*.log "$root"/var/log/apt/*
	tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
	mv "$tarball.tmp" "$tarball"
	rm -rf "$root"
	trap - EXIT
fi
for n in "${names[@]}"; do
	echo "  IMPORT    $n"
	$engine import --change 'CMD ["/bin/bash"]' "$tarball" "$n" >/dev/null 2>"$cache/import.log" || {
		cat "$cache/import.log" >&2
		exit 1
	}
done
