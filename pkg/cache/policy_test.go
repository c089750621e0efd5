package cache

import (
	"net/http"
	"testing"
	"time"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want func(d Directives) bool
	}{
		{"§5.2 names are case-insensitive", []string{"Max-Age=60"}, func(d Directives) bool { return d.MaxAge == Delta{true, 60} }},
		{"§4.2.1 first of duplicates wins", []string{"max-age=1, max-age=1800"}, func(d Directives) bool { return d.MaxAge.Seconds == 1 }},
		{"§4.2.1 first across lines", []string{"max-age=1800", "max-age=1"}, func(d Directives) bool { return d.MaxAge.Seconds == 1800 }},
		{"§5.2 quoted delta accepted", []string{`max-age="3600"`}, func(d Directives) bool { return d.MaxAge.Seconds == 3600 }},
		{"§1.2.2 invalid delta is stale", []string{"max-age=3600a"}, func(d Directives) bool { return d.MaxAge == Delta{true, 0} }},
		{"§1.2.2 overflow becomes 2^31", []string{"max-age=99999999999999999999"}, func(d Directives) bool { return d.MaxAge.Seconds == MaxDelta }},
		{"quoted string hides a directive", []string{`ext="max-age=3600", max-age=1`}, func(d Directives) bool { return d.MaxAge.Seconds == 1 }},
		{"space before = is not the directive", []string{"max-age =3600"}, func(d Directives) bool { return !d.MaxAge.Set }},
		{"§5.2.2.7 qualified private", []string{`private="Set-Cookie, X-A"`}, func(d Directives) bool {
			return d.Private && len(d.PrivateFields) == 2 && d.PrivateFields[1] == "x-a"
		}},
		{"§5.2.1.2 max-stale without value", []string{"max-stale"}, func(d Directives) bool { return d.MaxStaleAny }},
		{"RFC 5861 windows", []string{"stale-while-revalidate=30, stale-if-error=60"}, func(d Directives) bool {
			return d.StaleWhileRevalidate.Seconds == 30 && d.StaleIfError.Seconds == 60
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := ParseCacheControl(tt.in); !tt.want(d) {
				t.Fatalf("ParseCacheControl(%q) = %+v", tt.in, d)
			}
		})
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="a,b", no-cache`, `x="\"", max-stale`, "s-maxage=1,,=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseCacheControl([]string{s})
		if d.MaxAge.Seconds < 0 || d.MaxAge.Seconds > MaxDelta {
			t.Fatalf("max-age out of range: %d", d.MaxAge.Seconds)
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	f.Add(EncodeEntry(&Entry{Status: 200, Header: hdr("A", "b"), Body: []byte("x")}))
	f.Add(encodeIndex(variantIndex{Names: []string{"accept"}, Epoch: "e"}))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = decodeValue(b) })
}

func TestEntryRoundTrip(t *testing.T) {
	e := &Entry{Status: 404, Header: hdr("X-A", "1", "X-A", "2"), Body: []byte("body"),
		RequestTime: time.Unix(100, 5), ResponseTime: time.Unix(101, 7)}
	d, err := decodeValue(EncodeEntry(e))
	if err != nil || d.entry == nil || d.entry.Status != 404 || string(d.entry.Body) != "body" ||
		len(d.entry.Header["X-A"]) != 2 || !d.entry.ResponseTime.Equal(e.ResponseTime) {
		t.Fatalf("round trip: %+v, %v", d.entry, err)
	}
}

func TestStorable(t *testing.T) {
	get := Request{Method: "GET", Header: hdr()}
	tests := []struct {
		name string
		req  Request
		res  Response
		want bool
	}{
		{"§3 max-age", get, Response{200, hdr("Cache-Control", "max-age=60")}, true},
		{"§3 heuristically cacheable status", get, Response{404, hdr()}, true},
		{"§3 not heuristically cacheable, no freshness", get, Response{302, hdr()}, false},
		{"§3 public makes any status storable", get, Response{302, hdr("Cache-Control", "public")}, true},
		{"§5.2.2.5 no-store", get, Response{200, hdr("Cache-Control", "no-store, max-age=60")}, false},
		{"§5.2.2.3 must-understand overrides no-store", get, Response{200, hdr("Cache-Control", "no-store, must-understand, max-age=60")}, true},
		{"§5.2.2.3 must-understand, unknown status", get, Response{299, hdr("Cache-Control", "must-understand, max-age=60")}, false},
		{"§5.2.2.7 private", get, Response{200, hdr("Cache-Control", "private, max-age=60")}, false},
		{"§3.5 Authorization", Request{"GET", hdr("Authorization", "x")}, Response{200, hdr("Cache-Control", "max-age=60")}, false},
		{"§3.5 Authorization with public", Request{"GET", hdr("Authorization", "x")}, Response{200, hdr("Cache-Control", "public, max-age=60")}, true},
		{"§3.5 Authorization with s-maxage", Request{"GET", hdr("Authorization", "x")}, Response{200, hdr("Cache-Control", "s-maxage=60")}, true},
		{"§5.2.1.5 request no-store", Request{"GET", hdr("Cache-Control", "no-store")}, Response{200, hdr("Cache-Control", "max-age=60")}, false},
		{"§4.1 Vary: *", get, Response{200, hdr("Cache-Control", "max-age=60", "Vary", "*")}, false},
		{"§3 POST not stored", Request{"POST", hdr()}, Response{200, hdr("Cache-Control", "max-age=60")}, false},
		{"§3 206 not stored whole", get, Response{206, hdr("Cache-Control", "max-age=60")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Storable(tt.req, RequestDirectives(tt.req.Header), tt.res, ResponseDirectives(tt.res.Header))
			if got != tt.want {
				t.Fatalf("Storable = %v (%s), want %v", got, why, tt.want)
			}
		})
	}
}

func TestFreshness(t *testing.T) {
	date := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	d := date.Format(http.TimeFormat)
	tests := []struct {
		name string
		res  Response
		p    Policy
		want time.Duration
	}{
		{"§4.2.1 s-maxage over max-age", Response{200, hdr("Cache-Control", "max-age=10, s-maxage=20")}, Policy{}, 20 * time.Second},
		{"§4.2.1 max-age over Expires", Response{200, hdr("Cache-Control", "max-age=10", "Date", d, "Expires", date.Add(time.Hour).Format(http.TimeFormat))}, Policy{}, 10 * time.Second},
		{"§4.2.1 Expires minus Date", Response{200, hdr("Date", d, "Expires", date.Add(time.Hour).Format(http.TimeFormat))}, Policy{}, time.Hour},
		{"§5.3 invalid Expires is stale", Response{200, hdr("Date", d, "Expires", "0")}, Policy{}, 0},
		{"§4.2.2 heuristic 10% of Last-Modified age", Response{200, hdr("Date", d, "Last-Modified", date.Add(-10*time.Hour).Format(http.TimeFormat))}, Policy{}, time.Hour},
		{"§4.2.2 heuristic capped", Response{200, hdr("Date", d, "Last-Modified", date.Add(-1000*time.Hour).Format(http.TimeFormat))}, Policy{HeuristicCap: 2 * time.Hour}, 2 * time.Hour},
		{"§4.2.2 no heuristic for 302", Response{302, hdr("Date", d, "Last-Modified", date.Add(-10*time.Hour).Format(http.TimeFormat))}, Policy{}, 0},
		{"route default_ttl without freshness", Response{200, hdr()}, Policy{DefaultTTL: time.Minute}, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := Freshness(tt.res, ResponseDirectives(tt.res.Header), tt.p); got != tt.want {
				t.Fatalf("Freshness = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAge(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"§4.2.3 resident time", hdr("Date", t0.Format(http.TimeFormat)), 12 * time.Second},
		{"§4.2.3 Age plus response delay", hdr("Age", "100"), 100*time.Second + 2*time.Second + 10*time.Second},
		{"§1.2.2 negative Age is stale", hdr("Age", "-5"), MaxDelta*time.Second + 12*time.Second},
		{"§1.2.2 list Age is stale", hdr("Age", "0, 0"), MaxDelta*time.Second + 12*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// request at t0, response at t0+2s, now t0+12s
			if got := Age(tt.h, t0, t0.Add(2*time.Second), t0.Add(12*time.Second)); got != tt.want {
				t.Fatalf("Age = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	fresh := Stored{Lifetime: time.Minute, Age: 10 * time.Second}
	stale := Stored{Lifetime: time.Minute, Age: 90 * time.Second}
	cc := func(s Stored, v string) Stored { s.CC = ParseCacheControl([]string{v}); return s }
	tests := []struct {
		name string
		req  string
		s    Stored
		want Action
	}{
		{"§4.2 fresh is served", "", fresh, Serve},
		{"§4.2 stale is revalidated", "", stale, Revalidate},
		{"§5.2.1.4 request no-cache", "no-cache", fresh, Revalidate},
		{"§5.2.2.4 response no-cache", "", cc(fresh, "no-cache"), Revalidate},
		{"§5.2.1.1 request max-age", "max-age=5", fresh, Revalidate},
		{"§5.2.1.3 min-fresh", "min-fresh=55", fresh, Revalidate},
		{"§5.2.1.2 max-stale", "max-stale=60", stale, ServeStale},
		{"§5.2.1.2 max-stale too small", "max-stale=10", stale, Revalidate},
		{"§5.2.2.2 must-revalidate beats max-stale", "max-stale", cc(stale, "must-revalidate"), Revalidate},
		{"§5.2.2.8 proxy-revalidate", "max-stale", cc(stale, "proxy-revalidate"), Revalidate},
		{"RFC 5861 §3 stale-while-revalidate", "", cc(stale, "stale-while-revalidate=60"), ServeStaleRefresh},
		{"RFC 5861 §3 past the window", "", cc(stale, "stale-while-revalidate=10"), Revalidate},
		{"§5.2.1.7 only-if-cached and stale", "only-if-cached", stale, GatewayTimeout},
		{"§5.2.1.7 only-if-cached and fresh", "only-if-cached", fresh, Serve},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := RequestDirectives(hdr("Cache-Control", tt.req))
			if got := Decide(req, tt.s).Action; got != tt.want {
				t.Fatalf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
	if !StaleIfError(Directives{}, cc(stale, "stale-if-error=60")) {
		t.Fatal("RFC 5861 §4: stale-if-error=60 should allow a response 30s stale")
	}
}

func TestSecondaryKeyNormalisation(t *testing.T) {
	names := []string{"accept-encoding"}
	a := SecondaryKey(names, hdr("Accept-Encoding", "gzip, br"))
	b := SecondaryKey(names, hdr("Accept-Encoding", "GZIP,br"))
	c := SecondaryKey(names, hdr("Accept-Encoding", "gzip", "Accept-Encoding", "br"))
	if a != b || a != c {
		t.Fatalf("§4.1 equivalent values differ: %q %q %q", a, b, c)
	}
	if SecondaryKey(names, hdr()) == SecondaryKey(names, hdr("Accept-Encoding", "")) {
		t.Fatal("§4.1 absent and empty must differ")
	}
	if _, star := VaryNames(hdr("Vary", "accept, *")); !star {
		t.Fatal("Vary: * not seen")
	}
}
