//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// envDebs names the two builds of the .deb the package test installs, in
// upgrade order, separated by a space ("dist/v1.deb dist/v2.deb"); `make
// package-test` sets it. Without it TestPackageDeb skips.
const envDebs = "HANDOFF_IT_DEBS"

// Paths the package must not leave behind after a purge, on top of
// anything new in the file system that names handoff.
var purgedPaths = []string{
	"/usr/bin/handoff", "/etc/handoff", "/var/lib/handoff",
	"/lib/systemd/system/handoff.service", "/usr/lib/sysusers.d/handoff.conf",
	"/etc/systemd/system/sockets.target.wants/handoff.socket",
}

// TestPackageDeb installs the .deb as an operator would (dpkg -i) into a
// fresh Debian 12 under a real systemd, and checks the package's promises:
// the socket is enabled and listening but nothing runs before the first
// connection; an upgrade to a second build under load is a binary upgrade
// of the running process with zero failed requests and keeps the changed
// conffile; remove stops and disables; purge leaves nothing behind.
func TestPackageDeb(t *testing.T) {
	debs := strings.Fields(os.Getenv(envDebs))
	if len(debs) != 2 {
		t.Skipf("%s must name two .deb builds (make package-test sets it)", envDebs)
	}
	b := newBox(t, boxOptions{NoInstall: true})
	before := b.fsList()

	for i, d := range debs {
		must(t, b.m.CopyFile(d, fmt.Sprintf("/var/cache/handoff-test-%d.deb", i+1), 0o644))
	}
	b.run("dpkg", "-i", "/var/cache/handoff-test-1.deb")
	if out := b.run("systemctl", "is-enabled", "handoff.socket", "handoff-admin.socket"); out != "enabled\nenabled" {
		t.Fatalf("after install: is-enabled = %q, want both enabled", out)
	}
	b.eventually(10*time.Second, "handoff.socket listening", func() (bool, string) {
		p := b.show("handoff.socket", "ActiveState", "SubState")
		return p["SubState"] == "listening", fmt.Sprint(p)
	})
	if p := b.show("handoff.service", "ActiveState"); p["ActiveState"] != "inactive" {
		t.Fatalf("handoff.service runs before the first connection: %v", p)
	}
	if _, err := b.try("getent", "passwd", "handoff"); err != nil {
		t.Fatalf("no user handoff after install: %v", err)
	}

	// The packaged example config routes to 127.0.0.1:8080.
	b.startBackend("app", 8080)
	if r := b.probe("http://127.0.0.1/"); !r.OK || r.Backend != "app" {
		t.Fatalf("first request through handoff.socket: %+v", r)
	}
	oldPID := b.waitActive("handoff.service", "", 10*time.Second)
	oldExe := b.run("readlink", fmt.Sprintf("/proc/%s/exe", oldPID))
	oldVersion := b.run(binPath, "version")
	// An admin's change to the conffile must survive the upgrade.
	b.run("sh", "-c", "echo '# changed by the admin' >> "+configPath)

	l := b.startLoad("package upgrade (dpkg -i)", loadOptions{})
	time.Sleep(2 * time.Second)
	b.run("dpkg", "-i", "/var/cache/handoff-test-2.deb")
	newPID := b.waitActive("handoff.service", oldPID, 30*time.Second)
	time.Sleep(2 * time.Second)
	r := l.stop("deb v1 -> v2, binary upgrade by postinst")
	expectClean(t, r, 1000)
	newExe := b.run("readlink", fmt.Sprintf("/proc/%s/exe", newPID))
	if strings.HasSuffix(newExe, "(deleted)") || newExe != strings.TrimSuffix(oldExe, " (deleted)") {
		t.Errorf("after upgrade main pid %s runs %q (old %s ran %q), want the new /usr/bin/handoff", newPID, newExe, oldPID, oldExe)
	}
	b.eventually(10*time.Second, "old process gone", func() (bool, string) {
		_, err := b.try("test", "-e", "/proc/"+oldPID)
		return err != nil, "pid " + oldPID + " still exists"
	})
	if v := b.run(binPath, "version"); v == oldVersion {
		t.Errorf("the second build reports the same version %q: not a different binary", v)
	}
	if out := b.run("cat", configPath); !strings.Contains(out, "changed by the admin") {
		t.Errorf("the upgrade replaced the changed conffile")
	}
	if out := b.run("dpkg-query", "-W", "-f=${Status} ${Version}", "handoff"); !strings.HasPrefix(out, "install ok installed") {
		t.Errorf("after upgrade: dpkg status %q", out)
	}

	b.run("dpkg", "-r", "handoff")
	for _, u := range []string{"handoff.service", "handoff.socket", "handoff-admin.socket"} {
		if p := b.show(u, "ActiveState"); p["ActiveState"] == "active" {
			t.Errorf("after remove: %s still active", u)
		}
	}
	if r := b.probe("http://127.0.0.1/"); r.OK {
		t.Errorf("after remove: a request still got through: %+v", r)
	}
	if out, err := b.try("sh", "-c", "ls /etc/systemd/system/*.wants/ | grep -E '^handoff([.@]|-admin|-https|-workers)'"); err == nil {
		t.Errorf("after remove: units still enabled: %s", out)
	}

	b.run("dpkg", "-P", "handoff")
	b.run("systemctl", "daemon-reload")
	for _, p := range purgedPaths {
		if _, err := b.try("test", "-e", p); err == nil {
			t.Errorf("after purge: %s still exists", p)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if out, err := b.try("getent", db, "handoff"); err == nil {
			t.Errorf("after purge: %s entry %q", db, out)
		}
	}
	after := b.fsList()
	var left []string
	for _, p := range after {
		if !slices.Contains(before, p) && strings.Contains(p, "handoff") {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Errorf("after purge these paths are left: %q", left)
	}
}

// fsList lists every path in the container's root file system except
// the volatile trees and the files the test copies in.
func (b *box) fsList() []string {
	b.t.Helper()
	out := b.run("find", "/", "-xdev", "(", "-path", "/proc", "-o", "-path", "/sys", "-o", "-path", "/run",
		"-o", "-path", "/tmp", "-o", "-path", "/var/tmp", "-o", "-path", "/var/log", "-o", "-path", "/var/cache",
		"-o", "-path", "/var/lib/dpkg", ")", "-prune", "-o", "-print")
	var paths []string
	for _, p := range strings.Split(out, "\n") {
		if p != "" && filepath.Base(p) != "loadgen" {
			paths = append(paths, p)
		}
	}
	return paths
}
