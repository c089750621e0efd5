package access

import (
	"net/netip"
	"testing"
)

func TestAllowed(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		ip          string
		want        bool
	}{
		{name: "empty allows", ip: "192.0.2.1", want: true},
		{name: "in allow", allow: []string{"10.0.0.0/8"}, ip: "10.1.2.3", want: true},
		{name: "outside allow", allow: []string{"10.0.0.0/8"}, ip: "192.0.2.1", want: false},
		{name: "deny wins", allow: []string{"10.0.0.0/8"}, deny: []string{"10.1.0.0/16"}, ip: "10.1.2.3", want: false},
		{name: "deny only", deny: []string{"192.0.2.1"}, ip: "192.0.2.1", want: false},
		{name: "deny only other", deny: []string{"192.0.2.1"}, ip: "192.0.2.2", want: true},
		{name: "v6", allow: []string{"fd00::/8"}, ip: "fd12::1", want: true},
		{name: "v6 outside", allow: []string{"fd00::/8"}, ip: "2001:db8::1", want: false},
		{name: "mapped v4", allow: []string{"10.0.0.0/8"}, ip: "::ffff:10.0.0.1", want: true},
		{name: "zone ignored", allow: []string{"fe80::/10"}, ip: "fe80::1%eth0", want: true},
		{name: "invalid addr with allow", allow: []string{"10.0.0.0/8"}, ip: "", want: false},
		{name: "invalid addr deny only", deny: []string{"10.0.0.0/8"}, ip: "", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.allow, tt.deny)
			if err != nil {
				t.Fatal(err)
			}
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			if got := l.Allowed(ip); got != tt.want {
				t.Fatalf("Allowed(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name        string
		allow, deny []string
	}{
		{name: "bad cidr", allow: []string{"10.0.0.0/33"}},
		{name: "bad ip", deny: []string{"example.com"}},
		{name: "empty entry", allow: []string{""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.allow, tt.deny); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestAllowedNoAlloc(t *testing.T) {
	l, _ := Parse([]string{"10.0.0.0/8", "fd00::/8"}, []string{"10.9.0.0/16"})
	ip := netip.MustParseAddr("10.1.2.3")
	if n := testing.AllocsPerRun(100, func() { l.Allowed(ip) }); n != 0 {
		t.Fatalf("Allowed allocates %v times", n)
	}
}

func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "fd00::/8", "192.0.2.1", "::ffff:1.2.3.4/128", "1.2.3.4/0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePrefixes([]string{s})
		if err != nil {
			return
		}
		if len(ps) != 1 || !ps[0].IsValid() || ps[0] != ps[0].Masked() {
			t.Fatalf("%q parsed to %v", s, ps)
		}
		// The prefix contains its own base address, unless it is an
		// IPv4-mapped one (Allowed unmaps before comparing).
		if a := ps[0].Addr(); !a.Is4In6() && !Contains(ps, a) {
			t.Fatalf("%v does not contain its base address", ps[0])
		}
	})
}
