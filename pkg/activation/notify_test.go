package activation

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/handoff-proxy/handoff/pkg/handofftest"
)

// notifySocket is a stand-in for the service manager's notification
// socket.
type notifySocket struct {
	conn *net.UnixConn
	addr string
}

func listenNotify(t *testing.T, addr string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{conn: conn, addr: addr}
}

// notifier returns a Notifier that sends to s.
func (s *notifySocket) notifier(t *testing.T, timeout time.Duration) *Notifier {
	t.Helper()
	n, err := NewNotifier(NotifierOptions{Env: newFakeEnv("NOTIFY_SOCKET="+s.addr).env(4242, 1), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if !n.Enabled() {
		t.Fatal("notifier disabled")
	}
	return n
}

// recv reads one datagram and the descriptors attached to it.
func (s *notifySocket) recv(t *testing.T) (string, []int) {
	t.Helper()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*scmMaxFD))
	s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, oobn, flags, _, err := s.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		t.Fatalf("truncated message, flags %#x", flags)
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		rights, err := unix.ParseUnixRights(&m)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, rights...)
	}
	return string(buf[:n]), fds
}

func TestNotifierMessages(t *testing.T) {
	sock := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := sock.notifier(t, 0)
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{name: "ready", send: n.Ready, want: "READY=1"},
		{name: "stopping", send: n.Stopping, want: "STOPPING=1"},
		{name: "watchdog", send: n.Watchdog, want: "WATCHDOG=1"},
		{name: "status", send: func() error { return n.Status("serving 3 listeners") }, want: "STATUS=serving 3 listeners"},
		{name: "status newlines flattened", send: func() error { return n.Status("a\nREADY=1\r\x00b") }, want: "STATUS=a READY=1  b"},
		{name: "main pid", send: func() error { return n.MainPID(31337) }, want: "MAINPID=31337"},
		{name: "extend", send: func() error { return n.Extend(1500 * time.Millisecond) }, want: "EXTEND_TIMEOUT_USEC=1500000"},
		{name: "fd store remove", send: func() error { return n.FDStoreRemove("http") }, want: "FDSTOREREMOVE=1\nFDNAME=http"},
		{name: "combined", send: func() error { return n.Send(NotifyReady, "STATUS=reloaded") }, want: "READY=1\nSTATUS=reloaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			got, fds := sock.recv(t)
			if got != tt.want || len(fds) != 0 {
				t.Errorf("got %q with %d fds, want %q", got, len(fds), tt.want)
			}
		})
	}
}

func TestNotifierReloading(t *testing.T) {
	sock := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := sock.notifier(t, 0)
	before, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reloading(); err != nil {
		t.Fatal(err)
	}
	after, _ := monotonicUsec()
	got, _ := sock.recv(t)
	lines := strings.Split(got, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("got %q, want RELOADING=1 and MONOTONIC_USEC= in one datagram", got)
	}
	us, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if us < before || us > after {
		t.Errorf("MONOTONIC_USEC=%d not within [%d, %d]", us, before, after)
	}
	// Cross-check the clock against the kernel's view: /proc/uptime is
	// CLOCK_BOOTTIME, which is never behind CLOCK_MONOTONIC.
	if raw, err := os.ReadFile("/proc/uptime"); err == nil {
		up, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
		if float64(us)/1e6 > up+1 {
			t.Errorf("MONOTONIC_USEC=%d is after uptime %.2fs: wrong clock", us, up)
		}
	}
}

func TestNotifierAbstractSocket(t *testing.T) {
	name := "@handoff-activation-notify-" + strconv.Itoa(os.Getpid())
	sock := listenNotify(t, name)
	n := sock.notifier(t, 0)
	if err := n.Send(NotifyReady, "STATUS=abstract"); err != nil {
		t.Fatal(err)
	}
	if got, _ := sock.recv(t); got != "READY=1\nSTATUS=abstract" {
		t.Errorf("got %q", got)
	}
}

func TestNotifierFDStore(t *testing.T) {
	sock := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := sock.notifier(t, 0)
	set, err := Listen(t.Context(), Options{Env: newFakeEnv().env(4242, 1), Logger: handofftest.Logger(t)}, []Want{
		{Name: "http", Address: "127.0.0.1:0"},
		{Name: "admin", Address: "127.0.0.1:0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	files, err := set.Files()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range files {
			f.File.Close()
		}
	}()
	if err := n.FDStore("http", files[0].File, files[1].File); err != nil {
		t.Fatal(err)
	}
	got, fds := sock.recv(t)
	if got != "FDSTORE=1\nFDNAME=http" {
		t.Errorf("payload %q", got)
	}
	if len(fds) != 2 {
		t.Fatalf("received %d fds, want 2", len(fds))
	}
	// Each received descriptor is the very listening socket: a listener
	// made from it accepts connections dialed to the original address.
	for i, fd := range fds {
		// The os.File owns fd from here on: closing fd by number
		// would leave its finalizer to close a reused number later.
		f := os.NewFile(uintptr(fd), "stored")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, ln, "tcp", set.Listener(set.Names()[i]).Addr().String())
		ln.Close()
	}
}

func TestNotifierFDStoreAll(t *testing.T) {
	sock := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := sock.notifier(t, 0)
	a, b, c := regularFile(t), regularFile(t), regularFile(t)
	err := n.FDStoreAll([]NamedFile{{Name: "http", File: a}, {Name: "admin", File: b}, {Name: "http", File: c}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		payload string
		fds     int
	}{{"FDSTORE=1\nFDNAME=http", 2}, {"FDSTORE=1\nFDNAME=admin", 1}} {
		got, fds := sock.recv(t)
		for _, fd := range fds {
			unix.Close(fd)
		}
		if got != want.payload || len(fds) != want.fds {
			t.Errorf("got %q with %d fds, want %q with %d", got, len(fds), want.payload, want.fds)
		}
	}
}

func TestNotifierDisabled(t *testing.T) {
	n, err := NewNotifier(NotifierOptions{Env: newFakeEnv().env(4242, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var nilNotifier *Notifier
	f := regularFile(t)
	for _, n := range []*Notifier{n, nilNotifier} {
		if n.Enabled() {
			t.Fatal("enabled without NOTIFY_SOCKET")
		}
		for i, err := range []error{n.Ready(), n.Reloading(), n.Stopping(), n.Watchdog(), n.Status("x"), n.MainPID(2), n.Extend(time.Second), n.FDStore("http", f), n.FDStoreRemove("http")} {
			if err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		}
	}
}

func TestNotifierErrors(t *testing.T) {
	sock := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
	n := sock.notifier(t, 0)
	f := regularFile(t)
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{name: "no lines", err: n.Send(), wantErr: ErrInvalidMessage},
		{name: "line without =", err: n.Send("READY"), wantErr: ErrInvalidMessage},
		{name: "empty variable", err: n.Send("=1"), wantErr: ErrInvalidMessage},
		{name: "embedded newline", err: n.Send("STATUS=a\nREADY=1"), wantErr: ErrInvalidMessage},
		{name: "bad pid", err: n.MainPID(0), wantErr: ErrInvalidMessage},
		{name: "bad extension", err: n.Extend(0), wantErr: ErrInvalidMessage},
		{name: "fd store without files", err: n.FDStore("http"), wantErr: ErrInvalidMessage},
		{name: "fd store nil file", err: n.FDStore("http", nil), wantErr: ErrInvalidMessage},
		{name: "fd name with colon", err: n.FDStore("a:b", f), wantErr: ErrInvalidName},
		{name: "fd name empty", err: n.FDStoreRemove(""), wantErr: ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.wantErr) {
				t.Errorf("err = %v, want %v", tt.err, tt.wantErr)
			}
		})
	}
	// None of the refused messages reached the socket.
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got, _ := sock.recv(t); got != "READY=1" {
		t.Errorf("first datagram %q, want READY=1", got)
	}
}

func TestNewNotifierInvalid(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{name: "relative path", value: "run/notify"},
		{name: "vsock", value: "vsock:2:1234"},
		{name: "lone at", value: "@"},
		{name: "too long", value: "/" + strings.Repeat("x", 120)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNotifier(NotifierOptions{Env: newFakeEnv("NOTIFY_SOCKET="+tt.value).env(4242, 1)})
			if !errors.Is(err, ErrInvalidEnv) {
				t.Errorf("err = %v, want ErrInvalidEnv", err)
			}
		})
	}
}

func TestNotifierSendErrors(t *testing.T) {
	t.Run("nobody listening", func(t *testing.T) {
		n, err := NewNotifier(NotifierOptions{Env: newFakeEnv("NOTIFY_SOCKET="+filepath.Join(t.TempDir(), "gone")).env(4242, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Ready(); !errors.Is(err, unix.ENOENT) {
			t.Errorf("err = %v, want ENOENT", err)
		}
	})
	t.Run("manager stopped reading", func(t *testing.T) {
		// A full receive queue blocks a datagram sender (unix(7)); the
		// deadline must end the send.
		sock := listenNotify(t, filepath.Join(t.TempDir(), "notify"))
		n := sock.notifier(t, 50*time.Millisecond)
		var err error
		for i := 0; i < 10000 && err == nil; i++ {
			err = n.Status(strings.Repeat("x", 1024))
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("err = %v, want a deadline error", err)
		}
	})
}
