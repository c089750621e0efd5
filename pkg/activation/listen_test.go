package activation

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// fileOf returns a duplicate of c's descriptor and closes c; the socket
// lives on in the file.
func fileOf(t *testing.T, c interface {
	File() (*os.File, error)
	Close() error
}) *os.File {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return f
}

func tcpListenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	return fileOf(t, ln.(*net.TCPListener)), addr
}

func unixListenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return fileOf(t, ln.(*net.UnixListener)), path
}

func udpFile(t *testing.T) *os.File {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return fileOf(t, pc.(*net.UDPConn))
}

func unlistenedTCPFile(t *testing.T) *os.File {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "unlistened")
}

func regularFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// passFDs places duplicates of files on consecutive free descriptors
// without FD_CLOEXEC, as a service manager passes them, closes the
// originals and returns the first number (Options.FirstFD). Tests using it
// must not run in parallel.
func passFDs(t *testing.T, files ...*os.File) int {
	t.Helper()
	base := 300
search:
	for ; base < 900; base += 16 {
		for i := range files {
			if !fdClosed(base + i) {
				continue search
			}
		}
		break
	}
	for i, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var derr error
		if err := rc.Control(func(fd uintptr) { derr = unix.Dup3(int(fd), base+i, 0) }); err != nil {
			t.Fatal(err)
		}
		if derr != nil {
			t.Fatalf("dup3 to %d: %v", base+i, derr)
		}
		f.Close()
	}
	return base
}

// fdClosed reports whether fd is not open in this process.
func fdClosed(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return errors.Is(err, unix.EBADF)
}

func assertFDsClosed(t *testing.T, first, n int) {
	t.Helper()
	for fd := first; fd < first+n; fd++ {
		if !fdClosed(fd) {
			t.Errorf("passed fd %d still open", fd)
			unix.Close(fd)
		}
	}
}

// activationEnv returns options with fds passed the systemd way: LISTEN_PID
// is ours (4242), names as given.
func activationEnv(first int, names ...string) (*fakeEnv, Options) {
	e := newFakeEnv("LISTEN_PID=4242", "LISTEN_FDS="+strconv.Itoa(len(names)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	return e, Options{Env: e.env(4242, 1), FirstFD: first}
}

// roundTrip dials addr and checks that ln accepts that very connection.
func roundTrip(t *testing.T, ln net.Listener, network, addr string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	var a accepted
	select {
	case a = <-ch:
	case <-time.After(10 * time.Second):
		ln.Close() // unblock the goroutine
		<-ch
		t.Fatalf("accept on %s: nothing after 10s", ln.Addr())
	}
	if a.err != nil {
		t.Fatalf("accept on %s: %v", ln.Addr(), a.err)
	}
	s := a.c
	defer s.Close()
	if network == "tcp" && s.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("accepted %s, dialed from %s", s.RemoteAddr(), c.LocalAddr())
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := s.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("read %q, %v", buf, err)
	}
}

func TestListenPassedAndBound(t *testing.T) {
	tf, taddr := tcpListenerFile(t)
	uf, upath := unixListenerFile(t)
	first := passFDs(t, tf, uf)
	e, opts := activationEnv(first, "http", "admin")
	opts.Logger = handofftest.Logger(t)
	set, err := Listen(t.Context(), opts, []Want{
		{Name: "http", Address: "127.0.0.1:1"}, // passed fd wins over the address
		{Name: "admin"},
		{Name: "metrics", Address: "127.0.0.1:0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	assertFDsClosed(t, first, 2)
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := e.get(k); ok {
			t.Errorf("%s not unset", k)
		}
	}
	if got := set.Names(); !slices.Equal(got, []string{"http", "admin", "metrics"}) {
		t.Errorf("Names() = %q", got)
	}
	for _, tt := range []struct {
		name    string
		passed  bool
		network string
		addr    string
	}{
		{name: "http", passed: true, network: "tcp", addr: taddr},
		{name: "admin", passed: true, network: "unix", addr: upath},
		{name: "metrics", passed: false, network: "tcp"},
	} {
		ln := set.Listener(tt.name)
		if ln == nil {
			t.Fatalf("no listener %q", tt.name)
		}
		if got := set.FromSystemd(tt.name); got != tt.passed {
			t.Errorf("FromSystemd(%q) = %t", tt.name, got)
		}
		addr := tt.addr
		if addr == "" {
			addr = ln.Addr().String()
		} else if ln.Addr().String() != addr {
			t.Errorf("%s: addr %s, want %s", tt.name, ln.Addr(), addr)
		}
		roundTrip(t, ln, tt.network, addr)
	}
	if set.Listener("nope") != nil || set.FromSystemd("nope") {
		t.Error("unknown name has a listener")
	}
	// A server closes its listener on shutdown; Set.Close then must not
	// report it.
	set.Listener("http").Close()
	if err := set.Close(); err != nil {
		t.Errorf("Close after a listener was closed: %v", err)
	}
	if err := set.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestInheritSetsCloseOnExec(t *testing.T) {
	tf, _ := tcpListenerFile(t)
	first := passFDs(t, tf)
	defer unix.Close(first)
	if flags, _ := unix.FcntlInt(uintptr(first), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC != 0 {
		t.Fatal("test setup: fd already close-on-exec")
	}
	_, opts := activationEnv(first, "http")
	passed, err := inherit(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(passed) != 1 || passed[0] != (passedFD{fd: first, name: "http"}) {
		t.Fatalf("passed = %+v", passed)
	}
	flags, err := unix.FcntlInt(uintptr(first), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd flags %#x, %v: want FD_CLOEXEC", flags, err)
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name     string
		files    func(t *testing.T) []*os.File
		names    []string
		env      []string // instead of files/names
		wants    []Want
		wantErr  error
		wantText []string
		keepsEnv bool // the error comes before the environment is read
	}{
		{
			name: "unclaimed fds are named",
			files: func(t *testing.T) []*os.File {
				a, _ := tcpListenerFile(t)
				b, _ := tcpListenerFile(t)
				c, _ := tcpListenerFile(t)
				d, _ := tcpListenerFile(t)
				return []*os.File{a, b, c, d}
			},
			names:    []string{"http", "extra", "other", "extra"},
			wants:    []Want{{Name: "http"}},
			wantErr:  ErrUnclaimed,
			wantText: []string{"systemd passed fd(s) named extra, other that no listener is configured for"},
		},
		{
			name:     "datagram socket",
			files:    func(t *testing.T) []*os.File { return []*os.File{udpFile(t)} },
			names:    []string{"http"},
			wants:    []Want{{Name: "http"}},
			wantErr:  ErrNotListener,
			wantText: []string{"named http", "SOCK_DGRAM"},
		},
		{
			name:     "stream socket without listen",
			files:    func(t *testing.T) []*os.File { return []*os.File{unlistenedTCPFile(t)} },
			names:    []string{"http"},
			wants:    []Want{{Name: "http"}},
			wantErr:  ErrNotListener,
			wantText: []string{"named http", "not listening"},
		},
		{
			name:     "regular file",
			files:    func(t *testing.T) []*os.File { return []*os.File{regularFile(t)} },
			names:    []string{"admin"},
			wants:    []Want{{Name: "admin"}},
			wantErr:  ErrNotListener,
			wantText: []string{"named admin"},
		},
		{
			name: "second fd bad after first good",
			files: func(t *testing.T) []*os.File {
				a, _ := tcpListenerFile(t)
				return []*os.File{a, udpFile(t)}
			},
			names:   []string{"http", "admin"},
			wants:   []Want{{Name: "http"}, {Name: "admin"}},
			wantErr: ErrNotListener,
		},
		{
			name:     "no address and nothing passed",
			wants:    []Want{{Name: "http", Address: "127.0.0.1:0"}, {Name: "admin"}},
			wantErr:  ErrNoAddress,
			wantText: []string{`"admin"`},
		},
		{
			name:     "bind fails after fds were taken",
			files:    func(t *testing.T) []*os.File { a, _ := tcpListenerFile(t); return []*os.File{a} },
			names:    []string{"http"},
			wants:    []Want{{Name: "http"}, {Name: "admin", Address: busy.Addr().String()}},
			wantErr:  syscall.EADDRINUSE,
			wantText: []string{`listen "admin"`},
		},
		{
			name:    "malformed LISTEN_FDS",
			env:     []string{"LISTEN_PID=4242", "LISTEN_FDS=two"},
			wants:   []Want{{Name: "http", Address: ":0"}},
			wantErr: ErrInvalidEnv,
		},
		{
			name:     "invalid want name",
			env:      []string{"LISTEN_PID=4242", "LISTEN_FDS=1"},
			wants:    []Want{{Name: "a:b", Address: ":0"}},
			wantErr:  ErrInvalidName,
			keepsEnv: true,
		},
		{
			name:     "duplicate want",
			env:      []string{"LISTEN_PID=4242", "LISTEN_FDS=1"},
			wants:    []Want{{Name: "http", Address: ":0"}, {Name: "http", Address: ":1"}},
			wantErr:  ErrInvalidName,
			keepsEnv: true,
		},
		{
			name:     "bad address",
			env:      []string{"LISTEN_PID=4242", "LISTEN_FDS=1"},
			wants:    []Want{{Name: "http", Address: "8080"}},
			wantErr:  ErrInvalidAddress,
			keepsEnv: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []*os.File
			if tt.files != nil {
				files = tt.files(t)
			}
			first := 0
			if len(files) > 0 {
				first = passFDs(t, files...)
			}
			e, opts := activationEnv(first, tt.names...)
			if tt.env != nil {
				e = newFakeEnv(tt.env...)
				opts.Env = e.env(4242, 1)
			}
			opts.Logger = handofftest.Logger(t)
			set, err := Listen(t.Context(), opts, tt.wants)
			if err == nil {
				set.Close()
				t.Fatal("Listen succeeded")
			}
			t.Log(err)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if len(files) > 0 {
				assertFDsClosed(t, first, len(files))
			}
			if _, set := e.get("LISTEN_FDS"); set != tt.keepsEnv {
				t.Errorf("LISTEN_FDS still set: %t, want %t", set, tt.keepsEnv)
			}
		})
	}
}

func TestListenSingleUnnamed(t *testing.T) {
	tests := []struct {
		name       string
		fds        int
		names      string // LISTEN_FDNAMES; empty means unset
		single     string
		wants      []Want
		wantPassed map[string]bool
		wantErr    error
		wantText   string
	}{
		{
			name:       "one unknown fd serves http",
			fds:        1,
			single:     "http",
			wants:      []Want{{Name: "http"}, {Name: "admin", Address: "127.0.0.1:0"}},
			wantPassed: map[string]bool{"http": true, "admin": false},
		},
		{
			name:     "without the mapping unknown is unclaimed",
			fds:      1,
			wants:    []Want{{Name: "http"}},
			wantErr:  ErrUnclaimed,
			wantText: "named unknown that",
		},
		{
			name:     "two unknown fds are not mapped",
			fds:      2,
			single:   "http",
			wants:    []Want{{Name: "http"}},
			wantErr:  ErrUnclaimed,
			wantText: "named unknown that",
		},
		{
			name:       "a named fd is left alone",
			fds:        1,
			names:      "admin",
			single:     "http",
			wants:      []Want{{Name: "http", Address: "127.0.0.1:0"}, {Name: "admin"}},
			wantPassed: map[string]bool{"http": false, "admin": true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []*os.File
			for range tt.fds {
				f, _ := tcpListenerFile(t)
				files = append(files, f)
			}
			first := passFDs(t, files...)
			kv := []string{"LISTEN_PID=4242", "LISTEN_FDS=" + strconv.Itoa(tt.fds)}
			if tt.names != "" {
				kv = append(kv, "LISTEN_FDNAMES="+tt.names)
			}
			opts := Options{Env: newFakeEnv(kv...).env(4242, 1), FirstFD: first, SingleUnnamed: tt.single, Logger: handofftest.Logger(t)}
			set, err := Listen(t.Context(), opts, tt.wants)
			assertFDsClosed(t, first, tt.fds)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantText) {
					t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			for name, want := range tt.wantPassed {
				if got := set.FromSystemd(name); got != want {
					t.Errorf("FromSystemd(%q) = %t, want %t", name, got, want)
				}
				ln := set.Listener(name)
				roundTrip(t, ln, "tcp", ln.Addr().String())
			}
		})
	}
}

func TestListenSeveralFDsOneName(t *testing.T) {
	a, aaddr := tcpListenerFile(t)
	b, baddr := tcpListenerFile(t)
	first := passFDs(t, a, b)
	_, opts := activationEnv(first, "http", "http")
	opts.Logger = handofftest.Logger(t)
	set, err := Listen(t.Context(), opts, []Want{{Name: "http"}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	ln := set.Listener("http")
	for _, addr := range []string{aaddr, baddr, baddr, aaddr} {
		// Each accept must return the connection just dialed, whichever
		// socket it arrived on.
		roundTrip(t, ln, "tcp", addr)
	}
	files, err := set.Files()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Name)
		f.File.Close()
	}
	if !slices.Equal(got, []string{"http", "http"}) {
		t.Errorf("Files() names = %q", got)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := set.Close(); err != nil {
		t.Errorf("Set.Close after listener Close: %v", err)
	}
}

func TestSetFiles(t *testing.T) {
	upath := filepath.Join(t.TempDir(), "u.sock")
	set, err := Listen(t.Context(), Options{Env: newFakeEnv().env(4242, 1), Logger: handofftest.Logger(t)}, []Want{
		{Name: "http", Address: "127.0.0.1:0"},
		{Name: "admin", Address: "unix:" + upath},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	files, err := set.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Name != "http" || files[1].Name != "admin" {
		t.Fatalf("Files() = %+v", files)
	}
	for _, f := range files {
		// os/exec calls Fd for ExtraFiles; that must not turn the shared
		// open file description blocking under the live listener.
		_ = f.File.Fd()
	}
	for _, name := range set.Names() {
		rc, err := set.Listener(name).(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags int
		var ferr error
		rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) })
		if ferr != nil || flags&unix.O_NONBLOCK == 0 {
			t.Errorf("listener %s: flags %#x, %v: want O_NONBLOCK", name, flags, ferr)
		}
	}
	// The duplicate is the same socket: a listener made from it accepts
	// connections dialed to the original address.
	for i, f := range files {
		ln, err := net.FileListener(f.File)
		f.File.Close()
		if err != nil {
			t.Fatal(err)
		}
		network, addr := "tcp", set.Listener("http").Addr().String()
		if i == 1 {
			network, addr = "unix", upath
		}
		roundTrip(t, ln, network, addr)
		ln.Close()
	}
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Files(); !errors.Is(err, ErrClosed) {
		t.Errorf("Files after Close: %v, want ErrClosed", err)
	}
	if _, err := os.Lstat(upath); err != nil {
		t.Errorf("socket file gone after Close (RemoveSocketFiles is false): %v", err)
	}
}

func TestBindUnix(t *testing.T) {
	ctx := t.Context()
	listenAt := func(t *testing.T, opts Options, addr string) (*Set, error) {
		t.Helper()
		opts.Env = newFakeEnv().env(4242, 1)
		opts.Logger = handofftest.Logger(t)
		return Listen(ctx, opts, []Want{{Name: "s", Address: addr}})
	}
	tests := []struct {
		name     string
		prepare  func(t *testing.T, path string) // creates what is at path before Listen
		opts     Options
		wantErr  error
		wantMode fs.FileMode
	}{
		{name: "fresh path gets 0660", wantMode: 0o660},
		{name: "configured mode", opts: Options{SocketMode: 0o600}, wantMode: 0o600},
		{
			name: "stale socket file is replaced",
			prepare: func(t *testing.T, path string) {
				ln, err := net.Listen("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				ln.(*net.UnixListener).SetUnlinkOnClose(false)
				ln.Close()
			},
			wantMode: 0o660,
		},
		{
			name: "live socket is left alone",
			prepare: func(t *testing.T, path string) {
				ln, err := net.Listen("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
			},
			wantErr: syscall.EADDRINUSE,
		},
		{
			name: "regular file is not removed",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: fs.ErrExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "h.sock")
			if tt.prepare != nil {
				tt.prepare(t, path)
			}
			before, _ := os.Lstat(path)
			set, err := listenAt(t, tt.opts, "unix:"+path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				after, serr := os.Lstat(path)
				if serr != nil || !os.SameFile(before, after) {
					t.Errorf("existing file at path was replaced or removed: %v", serr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("mode %v, want socket %v", fi.Mode(), tt.wantMode)
			}
			roundTrip(t, set.Listener("s"), "unix", path)
		})
	}

	t.Run("RemoveSocketFiles removes on Close", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "r.sock")
		set, err := listenAt(t, Options{RemoveSocketFiles: true}, "unix:"+path)
		if err != nil {
			t.Fatal(err)
		}
		set.Close()
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket file after Close: %v", err)
		}
	})
	t.Run("abstract socket", func(t *testing.T) {
		name := "@handoff-activation-test-" + strconv.Itoa(os.Getpid())
		set, err := listenAt(t, Options{}, "unix:"+name)
		if err != nil {
			t.Fatal(err)
		}
		defer set.Close()
		roundTrip(t, set.Listener("s"), "unix", name)
	})
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Address
		wantErr bool
	}{
		{name: "ipv4", in: "127.0.0.1:8080", want: Address{"tcp", "127.0.0.1:8080"}},
		{name: "any port", in: ":80", want: Address{"tcp", ":80"}},
		{name: "ipv6", in: "[::1]:443", want: Address{"tcp", "[::1]:443"}},
		{name: "hostname", in: "localhost:0", want: Address{"tcp", "localhost:0"}},
		{name: "unix path", in: "unix:/run/handoff/http.sock", want: Address{"unix", "/run/handoff/http.sock"}},
		{name: "unix abstract", in: "unix:@handoff", want: Address{"unix", "@handoff"}},
		{name: "no port", in: "8080", wantErr: true},
		{name: "empty port", in: "host:", wantErr: true},
		{name: "named port", in: "host:http", wantErr: true},
		{name: "port too big", in: ":65536", wantErr: true},
		{name: "leading zero", in: ":080", wantErr: true},
		{name: "unbracketed ipv6", in: "::1:80", wantErr: true},
		{name: "empty unix", in: "unix:", wantErr: true},
		{name: "empty abstract", in: "unix:@", wantErr: true},
		{name: "unix path too long", in: "unix:/" + strings.Repeat("x", 107), wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidAddress) {
					t.Fatalf("ParseAddress(%q) = %+v, %v; want ErrInvalidAddress", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAddress(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestListenDuplicateFD pins the case of one socket arriving twice under
// one name (from its socket unit and from the fd store): it is served once.
func TestListenDuplicateFD(t *testing.T) {
	f, addr := tcpListenerFile(t)
	dup, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	first := passFDs(t, f, os.NewFile(uintptr(dup), "dup"))
	_, opts := activationEnv(first, "http", "http")
	opts.Logger = handofftest.Logger(t)
	set, err := Listen(t.Context(), opts, []Want{{Name: "http"}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	assertFDsClosed(t, first, 2)
	if _, ok := set.Listener("http").(*net.TCPListener); !ok {
		t.Errorf("listener is %T, want the single *net.TCPListener", set.Listener("http"))
	}
	files, err := set.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.File.Close()
	}
	if len(files) != 1 {
		t.Errorf("Files() returned %d entries, want 1", len(files))
	}
	roundTrip(t, set.Listener("http"), "tcp", addr)
}

// TestBindSetsBacklog pins the fix for self-bound listeners getting a
// backlog of 128 under ProcSubset=pid (net.Listen cannot read somaxconn
// there): bind sets the backlog itself with a second listen(2), which
// must take effect on a socket that already listens. A backlog of 1 lets
// only a couple of connections queue; listenBacklog lets many more.
func TestBindSetsBacklog(t *testing.T) {
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{name: "tcp", addr: func(*testing.T) string { return "127.0.0.1:0" }},
		{name: "unix", addr: func(t *testing.T) string { return "unix:" + filepath.Join(t.TempDir(), "s.sock") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAddress(tt.addr(t))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := bind(t.Context(), a, bindOptions{mode: defaultSocketMode})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			network, addr := ln.Addr().Network(), ln.Addr().String()
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			// dial opens n connections nobody accepts and reports how
			// many the kernel queued.
			dial := func(n int) int {
				ok := 0
				for range n {
					c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
					if err != nil {
						continue
					}
					conns = append(conns, c)
					ok++
				}
				return ok
			}
			if err := setBacklog(ln, 1); err != nil {
				t.Fatal(err)
			}
			if got := dial(5); got >= 5 {
				t.Fatalf("backlog 1: %d of 5 connections queued; listen(2) did not change the backlog", got)
			}
			if err := setBacklog(ln, listenBacklog); err != nil {
				t.Fatal(err)
			}
			if got := dial(20); got != 20 {
				t.Errorf("backlog %d: %d of 20 connections queued", listenBacklog, got)
			}
		})
	}
}

// TestBoundListenerKeepAlive: connections accepted on a TCP socket handoff
// bound carry TCP keepalive with net's defaults, set once on the listener
// and inherited, not per connection.
func TestBoundListenerKeepAlive(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		a, err := ParseAddress(addr)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := bind(t.Context(), a, bindOptions{mode: defaultSocketMode})
		if err != nil {
			if strings.HasPrefix(addr, "[") {
				t.Logf("no IPv6 loopback: %v", err)
				continue
			}
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				defer c.Close()
				_, _ = c.Read(make([]byte, 1))
			}
		}()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		_ = rc.Control(func(fd uintptr) {
			for name, o := range map[string][2]int{
				"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
				"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
				"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
				"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
			} {
				v, err := syscall.GetsockoptInt(int(fd), o[0], o[1])
				if err != nil {
					t.Errorf("getsockopt %s: %v", name, err)
				}
				got[name] = v
			}
		})
		want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 15, "TCP_KEEPCNT": 9}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: accepted socket has %s=%d, want %d", addr, k, got[k], v)
			}
		}
	}
}
