#!/usr/bin/env bash
# Validates container/handoff.container with the quadlet generator of
# Debian 13's podman (Debian 12's podman 4.3 has none) and the generated
# unit with systemd-analyze verify; any warning fails.
#
# The trixie podman package is fetched with apt-get download through a
# private apt configuration (its own sources list, lists and cache under
# QUADLET_CACHE): the host's apt sources are not touched.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${QUADLET_CACHE:-/var/cache/handoff-quadlet}
quadlet=$cache/root/usr/libexec/podman/quadlet
if [ ! -x "$quadlet" ]; then
	mkdir -p "$cache"/{lists/partial,archives/partial,root}
	cat > "$cache/sources.list" <<-SRC
	deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
	SRC
	apt_opts=(-o Dir::Etc::SourceList="$cache/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$cache/lists" -o Dir::Cache::Archives="$cache/archives"
		-o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache="" -o APT::Get::List-Cleanup=0)
	apt-get "${apt_opts[@]}" update -qq
	(cd "$cache" && apt-get "${apt_opts[@]}" download podman)
	dpkg-deb -x "$cache"/podman_*.deb "$cache/root"
fi

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/in" "$work/out" "$work/units"
cp "$repo/container/handoff.container" "$work/in/"
# -dryrun prints the generated units and fails on unknown keys.
if ! QUADLET_UNIT_DIRS="$work/in" "$quadlet" -dryrun -no-kmsg-log > "$work/dryrun.txt" 2> "$work/quadlet.err"; then
	cat "$work/quadlet.err"; echo "quadlet: FAIL: quadlet -dryrun rejected handoff.container"; exit 1
fi
if grep -v "Loading source unit file" "$work/quadlet.err" | grep -q .; then
	cat "$work/quadlet.err"; echo "quadlet: FAIL: quadlet printed warnings"; exit 1
fi
# The same generator in its normal mode writes handoff.service.
QUADLET_UNIT_DIRS="$work/in" "$quadlet" -no-kmsg-log "$work/out" 2>&1 | grep -v "Loading source unit file" || true
[ -f "$work/out/handoff.service" ] || { echo "quadlet: FAIL: no handoff.service generated"; exit 1; }
grep -q '^ExecStart=.*podman run' "$work/out/handoff.service" || { echo "quadlet: FAIL: generated unit runs no podman"; exit 1; }

# systemd-analyze verify: ExecStart= must exist, so verify in a tree that
# has /usr/bin/podman (the host's, Debian 12) and the socket unit.
cp "$work/out/handoff.service" "$repo/container/handoff.socket" "$work/units/"
out=$(cd "$work/units" && systemd-analyze verify --man=no ./handoff.socket ./handoff.service 2>&1) || true
if [ -n "$out" ]; then
	echo "$out"; echo "quadlet: FAIL: systemd-analyze verify printed the above"; exit 1
fi
echo "quadlet: ok: quadlet $("$quadlet" -version 2>/dev/null | head -1) generated handoff.service, systemd-analyze verify silent"
