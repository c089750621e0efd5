package activation

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func FuzzParseNames(f *testing.F) {
	seeds := []struct{ pid, ppid, fds, names string }{
		{"4242", "", "2", "http:admin"},
		{"4242", "", "1", ""},
		{"4242", "", "3", "a::b"},
		{"", "17", "1", "http"},
		{"1", "", "1", "x"},
		{"4242", "", "0", "x"},
		{"4242", "", "4096", ""},
		{"4242", "", "2", "a:b:c"},
		{"x", "", "1", ""},
		{"4242", "", "1", "\x00"},
	}
	for _, s := range seeds {
		f.Add(s.pid, s.ppid, s.fds, s.names)
	}
	f.Fuzz(func(t *testing.T, pid, ppid, fds, names string) {
		le := listenEnv{pid: pid, ppid: ppid, fds: fds, names: names}
		got, err := parseListenEnv(le, 4242, 17)
		if err != nil {
			if !errors.Is(err, ErrInvalidEnv) && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if got == nil {
			return
		}
		n, perr := strconv.Atoi(fds)
		if perr != nil || n != len(got) {
			t.Fatalf("LISTEN_FDS=%q gave %d names", fds, len(got))
		}
		if n > maxListenFDs {
			t.Fatalf("accepted %d fds", n)
		}
		for _, name := range got {
			if err := validName(name); err != nil {
				t.Fatalf("returned invalid name: %v", err)
			}
		}
		if names != "" && !strings.Contains(":"+names+":", "::") && strings.Join(got, ":") != names {
			t.Fatalf("names %q round-tripped to %q", names, strings.Join(got, ":"))
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:8080", ":80", "[::1]:443", "[fe80::1%eth0]:80", "localhost:0",
		"unix:/run/handoff/http.sock", "unix:@abstract", "unix:", "unix:@",
		"8080", "host:", "host:65536", "host:080", ":-1", "[::1]", "a:b:c",
		"unix:" + strings.Repeat("x", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("error %v does not wrap ErrInvalidAddress", err)
			}
			return
		}
		if a.String() != s {
			t.Fatalf("String() = %q, want the input %q", a.String(), s)
		}
		again, err := ParseAddress(a.String())
		if err != nil || again != a {
			t.Fatalf("reparse of %q: %+v, %v", a.String(), again, err)
		}
		switch a.Network {
		case "tcp":
			_, port, err := net.SplitHostPort(a.Address)
			if err != nil {
				t.Fatal(err)
			}
			if p, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(p, 10) != port {
				t.Fatalf("accepted port %q", port)
			}
		case "unix":
			if a.Address == "" || len(a.Address) > maxUnixPath || strings.IndexByte(a.Address, 0) >= 0 {
				t.Fatalf("accepted socket path %q", a.Address)
			}
		default:
			t.Fatalf("network %q", a.Network)
		}
	})
}

func FuzzParseWatchdog(f *testing.F) {
	for _, s := range [][2]string{{"", ""}, {"30000000", ""}, {"30000000", "4242"}, {"1", "1"}, {"1", "04242"}, {"0", ""}, {"9223372036854775807", ""}, {"x", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, usec, pid string) {
		d, err := parseWatchdog(usec, pid, 4242)
		if err != nil {
			if !errors.Is(err, ErrInvalidEnv) {
				t.Fatalf("error %v does not wrap ErrInvalidEnv", err)
			}
			return
		}
		if d < 0 || d%time.Microsecond != 0 {
			t.Fatalf("interval %v", d)
		}
		p, perr := strconv.Atoi(pid)
		enabled := usec != "" && (pid == "" || perr == nil && p == 4242)
		if (d > 0) != enabled {
			t.Fatalf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: interval %v", usec, pid, d)
		}
		if d > 0 && strconv.FormatInt(d.Microseconds(), 10) != strings.TrimLeft(usec, "0") {
			t.Fatalf("WATCHDOG_USEC=%q parsed as %v", usec, d)
		}
	})
}
