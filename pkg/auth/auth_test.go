package auth

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/state/statetest"
)

// htpasswdFile writes a file with the real htpasswd tool (apache2-utils).
func htpasswdFile(t *testing.T, entries ...[3]string) string {
	t.Helper()
	if _, err := exec.LookPath("htpasswd"); err != nil {
		t.Skip("htpasswd not installed (make deps installs apache2-utils)")
	}
	path := filepath.Join(t.TempDir(), "users")
	for i, e := range entries { // flag, user, password
		args := []string{"-b" + e[0]}
		if i == 0 {
			args[0] = "-cb" + e[0]
		}
		out, err := exec.Command("htpasswd", append(args, path, e[1], e[2])...).CombinedOutput()
		if err != nil {
			t.Fatalf("htpasswd %v: %v: %s", e, err, out)
		}
	}
	return path
}

func TestHtpasswdRealTool(t *testing.T) {
	path := htpasswdFile(t,
		[3]string{"B", "alice", "s3cret"},
		[3]string{"s", "bob", "hunter2"},
		[3]string{"m", "carol", "pässwörd"},
		[3]string{"B", "dave", ""},
	)
	h, err := LoadHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, pw string
		want           bool
	}{
		{"bcrypt right", "alice", "s3cret", true},
		{"bcrypt wrong", "alice", "s3cret ", false},
		{"sha right", "bob", "hunter2", true},
		{"sha wrong", "bob", "hunter", false},
		{"apr1 right", "carol", "pässwörd", true},
		{"apr1 wrong", "carol", "passwort", false},
		{"empty password", "dave", "", true},
		{"unknown user", "eve", "s3cret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.Verify(tt.user, tt.pw); got != tt.want {
				t.Fatalf("Verify(%q, %q) = %v", tt.user, tt.pw, got)
			}
		})
	}
}

func TestHtpasswdUnsupported(t *testing.T) {
	if _, err := exec.LookPath("htpasswd"); err != nil {
		t.Skip("htpasswd not installed")
	}
	for _, tt := range []struct{ name, flag string }{{"crypt", "-nbd"}, {"plain", "-nbp"}} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command("htpasswd", tt.flag, "u", "pw").Output()
			if err != nil {
				t.Skipf("htpasswd %s: %v", tt.flag, err)
			}
			_, err = ParseHtpasswd(out)
			if !errors.Is(err, ErrUnsupportedHash) {
				t.Fatalf("err = %v, want ErrUnsupportedHash", err)
			}
		})
	}
	if _, err := ParseHtpasswd([]byte("u:$6$salt$abc\n")); !errors.Is(err, ErrUnsupportedHash) {
		t.Fatalf("sha-crypt: %v", err)
	}
	if _, err := ParseHtpasswd([]byte("nocolon\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no colon: %v", err)
	}
}

func TestAPR1Known(t *testing.T) {
	// From htpasswd -nbm carol pw.
	if got := APR1("pw", "qFxFbAHz"); got != "$apr1$qFxFbAHz$ioKtb4nlhQGbYVMFND0PF1" {
		t.Fatalf("APR1 = %s", got)
	}
}

func TestTokens(t *testing.T) {
	file := "# ci tokens\nci " + HashToken("tok-1") + "\n" + HashToken("tok-2") + "\n"
	tk, err := ParseTokens([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := tk.Verify("tok-1"); !ok || n != "ci" {
		t.Fatalf("tok-1: %q %v", n, ok)
	}
	if n, ok := tk.Verify("tok-2"); !ok || n != "token3" {
		t.Fatalf("tok-2: %q %v", n, ok)
	}
	if _, ok := tk.Verify("tok-3"); ok {
		t.Fatal("unknown token accepted")
	}
	if _, err := ParseTokens([]byte("ci tok-1-in-clear\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("clear token: %v", err)
	}
}

func TestParseCredentials(t *testing.T) {
	if u, p, ok := ParseBasic("basic YWxpY2U6czNjcjp4"); !ok || u != "alice" || p != "s3cr:x" {
		t.Fatalf("basic: %q %q %v", u, p, ok)
	}
	if _, _, ok := ParseBasic("Bearer x"); ok {
		t.Fatal("bearer as basic")
	}
	if tok, ok := ParseBearer("Bearer  abc "); !ok || tok != "abc" {
		t.Fatalf("bearer: %q %v", tok, ok)
	}
}

func testLockout(t *testing.T, l Lockout) {
	ctx := context.Background()
	for i := range 3 {
		if d, err := l.Failed(ctx, "k"); err != nil || d != 0 {
			t.Fatalf("failure %d: lock %v, %v", i, d, err)
		}
	}
	d1, _ := l.Failed(ctx, "k")
	d2, _ := l.Failed(ctx, "k")
	if d1 != time.Second || d2 != 2*time.Second {
		t.Fatalf("locks %v, %v; want 1s, 2s", d1, d2)
	}
	if d, _ := l.Locked(ctx, "k"); d <= time.Second || d > 2*time.Second {
		t.Fatalf("locked for %v", d)
	}
	if d, _ := l.Locked(ctx, "other"); d != 0 {
		t.Fatalf("other key locked for %v", d)
	}
	_ = l.Succeeded(ctx, "k")
	if d, _ := l.Failed(ctx, "k"); d != 0 {
		t.Fatalf("after success the count did not restart: %v", d)
	}
}

func TestLockout(t *testing.T) {
	b := Backoff{Free: 3}
	t.Run("memory", func(t *testing.T) { testLockout(t, NewMemoryLockout(b, nil)) })
	t.Run("redis", func(t *testing.T) {
		r := statetest.StartRedis(t)
		c := goredis.NewClient(&goredis.Options{Addr: r.Addr})
		t.Cleanup(func() { _ = c.Close() })
		testLockout(t, NewRedisLockout(b, c, ""))
	})
	t.Run("redis down falls back", func(t *testing.T) {
		r := statetest.StartRedis(t)
		c := goredis.NewClient(&goredis.Options{Addr: r.Addr, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		r.Stop()
		testLockout(t, &FallbackLockout{Shared: NewRedisLockout(b, c, ""), Local: NewMemoryLockout(b, nil)})
	})
}

func FuzzParseHtpasswd(f *testing.F) {
	f.Add([]byte("alice:$2y$05$abcdefghijklmnopqrstuu5J0S8QVHrUPfBYVuO1DBK8i.e3Ie3vi\nbob:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n"))
	f.Add([]byte("carol:$apr1$qFxFbAHz$ioKtb4nlhQGbYVMFND0PF1\n# c\n\n"))
	f.Add([]byte("x:y\n:z\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHtpasswd(b)
		if err != nil {
			return
		}
		h.Verify("alice", "x") // must not panic
	})
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("ci " + HashToken("a") + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tk, err := ParseTokens(b); err == nil {
			tk.Verify("a")
		}
	})
}
