#!/bin/sh
# rootfs.sh SUITE — print the path of a cached minbase Debian root with
# systemd for SUITE (bookworm or trixie), building it first when missing.
#
# The cache lives under $HANDOFF_IT_CACHE (default /var/cache/handoff-it) in
# a directory named SUITE-HASH, HASH covering the suite, the package list
# and this script, so changing any of them builds a new tree. The tree is
# built in a temporary directory next to it and renamed into place, so an
# interrupted build never leaves a half-built cache behind; flock(1)
# serialises concurrent builders.
set -eu

suite=${1:-bookworm}
cache=${HANDOFF_IT_CACHE:-/var/cache/handoff-it}
mirror=${HANDOFF_IT_MIRROR:-http://deb.debian.org/debian}
# systemd, dbus: a real init with systemctl; iproute2: ip(8) to bring up lo;
# ca-certificates: harmless and makes the tree usable for TLS tests.
# Deliberately no procps: a minbase system has no kill(1), and the units
# must work without it (see systemd/handoff.service ExecReload=).
packages=systemd,systemd-sysv,dbus,iproute2,ca-certificates
# redis-server (bookworm): the workers share health verdicts through a Redis
# started inside the container (TestWorkersSharedHealth). debootstrap's
# policy-rc.d keeps it from starting during the build; its own unit is
# masked below, the test runs redis-server as a transient unit.
if [ "$suite" = bookworm ]; then
	packages=$packages,redis-server
fi

need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "rootfs.sh: installing $2" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2
}
need debootstrap debootstrap
need systemd-nspawn systemd-container

hash=$( { echo "$suite $packages"; cat "$0"; } | sha256sum | cut -c1-12)
dest="$cache/$suite-$hash"
mkdir -p "$cache"

exec 9>"$cache/.lock"
flock 9
if [ -d "$dest" ]; then
	echo "$dest"
	exit 0
fi

tmp=$(mktemp -d "$cache/.build-$suite-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "rootfs.sh: debootstrap $suite into $tmp (about 70 s)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" >&2

# A container needs no getty, no network configuration and no time sync;
# masking them makes boot faster and is-system-running reach "running".
for u in console-getty.service getty@.service systemd-networkd.service \
	systemd-timesyncd.service systemd-resolved.service apt-daily.timer \
	apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
	fstrim.timer redis-server.service; do
	ln -sf /dev/null "$tmp/etc/systemd/system/$u"
done
echo handoff-it >"$tmp/etc/hostname"
# Bring the loopback up early: --private-network gives the container only lo.
cat >"$tmp/etc/systemd/system/handoff-it-lo.service" <<'UNIT'
[Unit]
Description=Bring up loopback for the integration tests
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
ExecStart=/usr/sbin/ip link set lo up

[Install]
WantedBy=sysinit.target
UNIT
ln -sf ../handoff-it-lo.service "$tmp/etc/systemd/system/sysinit.target.wants/handoff-it-lo.service" 2>/dev/null ||
	{ mkdir -p "$tmp/etc/systemd/system/sysinit.target.wants" &&
		ln -sf ../handoff-it-lo.service "$tmp/etc/systemd/system/sysinit.target.wants/handoff-it-lo.service"; }
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"* 2>/dev/null || true

chmod 755 "$tmp"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
