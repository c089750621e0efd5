#!/usr/bin/env bash
# Compares what the .deb and .rpm contain with the golden lists in
# ../testdata: files with mode and owner (dpkg-deb -c, rpm -qlp), config
# files, and the maintainer scripts/scriptlets. Sizes, dates and versions
# are left out, so only a change to the package's layout shows up.
#
# usage: golden.sh PKG.deb PKG.rpm   (UPDATE=1 rewrites the lists)
set -euo pipefail
deb=$1 rpmf=$2
td=$(cd "$(dirname "$0")/../testdata" && pwd)
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT

dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' > "$out/deb.files"
{
	echo "## control members"
	dpkg-deb --ctrl-tarfile "$deb" | tar -t | sort
	echo "## conffiles"
	dpkg-deb -I "$deb" conffiles
	for s in postinst prerm postrm; do echo "## $s"; dpkg-deb -I "$deb" "$s"; done
} > "$out/deb.control"
rpm -qlp -v "$rpmf" 2>/dev/null | awk '{print $1, $3, $4, $9}' > "$out/rpm.files"
{
	echo "## config files"
	rpm -qp --configfiles "$rpmf" 2>/dev/null
	echo "## doc files"
	rpm -qp --docfiles "$rpmf" 2>/dev/null
	rpm -qp --scripts "$rpmf" 2>/dev/null
} > "$out/rpm.scripts"

rc=0
for f in deb.files deb.control rpm.files rpm.scripts; do
	if [ "${UPDATE:-}" = 1 ]; then cp "$out/$f" "$td/$f"; continue; fi
	diff -u "$td/$f" "$out/$f" || { echo "golden: FAIL: $f differs (UPDATE=1 to accept)"; rc=1; }
done
[ "${UPDATE:-}" = 1 ] && echo "golden: wrote $td" || { [ $rc = 0 ] && echo "golden: ok: deb and rpm match testdata/"; }
exit $rc
