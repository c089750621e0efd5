#!/usr/bin/env bash
# Runs the rpm scriptlets of two builds of the handoff rpm in a chroot:
# install (v1), upgrade (v1 -> v2) and erase, with `rpm --root`, and
# compares what they asked systemd to do with testdata/rpm-scriptlets.log.
# systemctl and systemd-sysusers are stubs that log their arguments;
# systemctl reports handoff.service and the worker handoff@2.service as
# running, so the upgrade must reload them (a binary upgrade, never a
# restart). busybox-static provides /bin/sh and the tools the scripts use.
#
# usage: rpm-scriptlets.sh V1.rpm V2.rpm   (UPDATE=1 rewrites the golden log)
set -euo pipefail
v1=$(realpath "$1"); v2=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
golden=$here/../testdata/rpm-scriptlets.log
root=$(mktemp -d /tmp/handoff-rpmroot.XXXXXX)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,dev,usr/bin,usr/sbin,run/systemd/system,tmp,etc}
mknod -m 666 "$root/dev/null" c 1 3
cp "$(command -v busybox)" "$root/bin/busybox"
for t in sh sed cut mkdir rm rmdir ln cat echo; do ln -s busybox "$root/bin/$t"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
cat > "$root/usr/bin/systemctl" <<'STUB'
#!/bin/sh
echo "systemctl $*" >> /scriptlets.log
case "$*" in
--version) echo "systemd 252 (252.38-1~deb12u1)" ;;
*list-units*) echo "handoff@2.service loaded active running handoff reverse proxy and load balancer, worker 2" ;;
*is-active*handoff.service|*is-active*handoff@2.service) exit 0 ;;
*is-active*) exit 3 ;;
esac
exit 0
STUB
cat > "$root/usr/bin/systemd-sysusers" <<'STUB'
#!/bin/sh
echo "systemd-sysusers $*" >> /scriptlets.log
STUB
chmod 755 "$root/usr/bin/systemctl" "$root/usr/bin/systemd-sysusers"

step() { echo "## $1" >> "$root/scriptlets.log"; }
rpm --root "$root" --initdb
step "install $(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$v1" 2>/dev/null)"
rpm --root "$root" -i --nodeps --quiet "$v1" 2> >(grep -v "Alien\|assuming you know" >&2)
[ -x "$root/usr/bin/handoff" ] || { echo "rpm-scriptlets: install left no /usr/bin/handoff"; exit 1; }
# %config(noreplace): an admin's change survives the upgrade.
echo "# changed by the admin" >> "$root/etc/handoff/handoff.yaml"
step "upgrade to $(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$v2" 2>/dev/null)"
rpm --root "$root" -U --nodeps --quiet "$v2" 2> >(grep -v "Alien\|assuming you know" >&2)
grep -q "changed by the admin" "$root/etc/handoff/handoff.yaml" ||
	{ echo "rpm-scriptlets: the upgrade overwrote /etc/handoff/handoff.yaml"; exit 1; }
step erase
rpm --root "$root" -e handoff 2> >(grep -v "Alien\|assuming you know\|saved as" >&2)
[ ! -e "$root/usr/bin/handoff" ] || { echo "rpm-scriptlets: erase left /usr/bin/handoff"; exit 1; }
[ -e "$root/etc/handoff/handoff.yaml.rpmsave" ] ||
	{ echo "rpm-scriptlets: erase did not keep the changed config as .rpmsave"; exit 1; }

if [ "${UPDATE:-}" = 1 ]; then
	cp "$root/scriptlets.log" "$golden"; echo "rpm-scriptlets: wrote $golden"; exit 0
fi
if ! diff -u "$golden" "$root/scriptlets.log"; then
	echo "rpm-scriptlets: FAIL: scriptlets differ from $golden (UPDATE=1 to accept)"; exit 1
fi
echo "rpm-scriptlets: ok: install, upgrade, erase as expected"
