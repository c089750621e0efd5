package clientip

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func mustTrusted(t testing.TB, list ...string) Trusted {
	t.Helper()
	ps, err := ParsePrefixes(list)
	if err != nil {
		t.Fatal(err)
	}
	return NewTrusted(ps)
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		name, in, want, msg string
	}{
		{name: "cidr", in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{name: "v6 cidr", in: "fd00::/8", want: "fd00::/8"},
		{name: "bare v4", in: "127.0.0.1", want: "127.0.0.1/32"},
		{name: "bare v6", in: "::1", want: "::1/128"},
		{name: "bad bits", in: "10.0.0.0/33", msg: "not a CIDR"},
		{name: "name", in: "proxy.local", msg: "not an IP address or CIDR"},
		{name: "empty", in: "", msg: "not an IP address or CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePrefix(tt.in)
			if tt.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error with %q", tt.in, p, err, tt.msg)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
			}
		})
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/8", "x"}); err == nil || !strings.Contains(err.Error(), `trusted_proxies: "x"`) {
		t.Errorf("ParsePrefixes with a bad entry = %v", err)
	}
}

func TestClientIP(t *testing.T) {
	trusted := mustTrusted(t, "10.0.0.0/8", "192.0.2.0/24")
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{name: "untrusted peer ignores header", remote: "203.0.113.9:1", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "trusted peer, right-most untrusted", remote: "10.0.0.1:1", xff: []string{"198.51.100.1, 203.0.113.5, 192.0.2.7"}, want: "203.0.113.5"},
		{name: "over several lines", remote: "10.0.0.1:1", xff: []string{"198.51.100.1", "203.0.113.5, 192.0.2.7"}, want: "203.0.113.5"},
		{name: "all trusted gives left-most", remote: "10.0.0.1:1", xff: []string{"192.0.2.1, 10.9.9.9"}, want: "192.0.2.1"},
		{name: "malformed header ignored", remote: "10.0.0.1:1", xff: []string{"evil"}, want: "10.0.0.1"},
		{name: "malformed after a good one", remote: "10.0.0.1:1", xff: []string{"198.51.100.1, evil"}, want: "10.0.0.1"},
		{name: "only empty elements", remote: "10.0.0.1:1", xff: []string{" , "}, want: "10.0.0.1"},
		{name: "no header", remote: "10.0.0.1:1", want: "10.0.0.1"},
		{name: "mapped ipv4 peer", remote: "[::ffff:10.0.0.1]:1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "unix socket peer", remote: "@", want: "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trusted.ClientIP(Peer(tt.remote), tt.xff).String(); got != tt.want {
				t.Fatalf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
	var nobody Trusted
	if got := nobody.ClientIP(netip.MustParseAddr("10.0.0.1"), []string{"1.2.3.4"}); got.String() != "10.0.0.1" {
		t.Errorf("zero Trusted: ClientIP = %s", got)
	}
}

func TestClientIPDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	trusted := mustTrusted(t, "10.0.0.0/8")
	peer := netip.MustParseAddr("10.0.0.1")
	xff := []string{"198.51.100.1, [2001:db8::1]:443, 10.0.0.2"}
	n := testing.AllocsPerRun(100, func() {
		if !trusted.ClientIP(peer, xff).IsValid() {
			t.Fatal("no client")
		}
	})
	if n != 0 {
		t.Errorf("ClientIP allocates %v times per call", n)
	}
}

func TestParseXForwardedFor(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{name: "none", in: nil, want: nil},
		{name: "one", in: []string{"192.0.2.1"}, want: []string{"192.0.2.1"}},
		{name: "list and lines", in: []string{"192.0.2.1, 2001:db8::1", " 198.51.100.7 "}, want: []string{"192.0.2.1", "2001:db8::1", "198.51.100.7"}},
		{name: "ports and brackets", in: []string{"192.0.2.1:8080, [2001:db8::1]:443, [2001:db8::2]"}, want: []string{"192.0.2.1", "2001:db8::1", "2001:db8::2"}},
		{name: "empty elements", in: []string{",192.0.2.1,,"}, want: []string{"192.0.2.1"}},
		{name: "hostname", in: []string{"192.0.2.1, evil.example"}, wantErr: true},
		{name: "unknown", in: []string{"unknown"}, wantErr: true},
		{name: "bracketed ipv4", in: []string{"[192.0.2.1]"}, wantErr: true},
		{name: "space inside", in: []string{"192.0.2 .1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseXForwardedFor(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %v, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, a := range got {
				gs = append(gs, a.String())
			}
			if !reflect.DeepEqual(gs, tt.want) {
				t.Fatalf("got %q, want %q", gs, tt.want)
			}
		})
	}
}

func FuzzXForwardedFor(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1, 2001:db8::1", "[2001:db8::1]:443", ",,", "unknown", "1.2.3.4:99999", "fe80::1%eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs, err := ParseXForwardedFor([]string{s})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		strs := make([]string, len(addrs))
		for i, a := range addrs {
			if !a.IsValid() {
				t.Fatalf("%q: invalid address in result", s)
			}
			strs[i] = a.String()
		}
		again, err := ParseXForwardedFor([]string{strings.Join(strs, ", ")})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", strs, err)
		}
		if !reflect.DeepEqual(addrs, again) {
			t.Fatalf("round trip of %q: %v != %v", s, addrs, again)
		}
	})
}

// FuzzClientIP holds the allocation-free ClientIP to the plain reading:
// parse the whole chain, then take the right-most untrusted address.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "198.51.100.1, 10.0.0.2", "10.0.0.3, 10.0.0.2", "evil, 1.2.3.4", "", " , "} {
		f.Add(s)
	}
	trusted := mustTrusted(f, "10.0.0.0/8")
	peer := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, s string) {
		want := peer
		if chain, err := ParseXForwardedFor([]string{s}); err == nil && len(chain) > 0 {
			want = chain[0].Unmap()
			for i := len(chain) - 1; i >= 0; i-- {
				if ip := chain[i].Unmap(); !trusted.Contains(ip) {
					want = ip
					break
				}
			}
		}
		if got := trusted.ClientIP(peer, []string{s}); got != want {
			t.Fatalf("ClientIP(%q) = %v, want %v", s, got, want)
		}
	})
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::1", "fd00::/8", "1.2.3.4/33", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() {
			t.Fatalf("ParsePrefix(%q) = %v, not a valid masked prefix", s, p)
		}
	})
}
