package admin

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/config"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// fill sets every field reachable from v to a distinct non-zero value and
// returns how many time.Duration values it set.
func fill(v reflect.Value, path string) int {
	if v.Type() == durationType {
		// Distinct, and exercising the "1m30s" / "1h" / "250ms" forms.
		d := time.Duration(len(path)%7+1)*90*time.Second + time.Duration(len(path))*time.Millisecond
		v.SetInt(int64(d))
		return 1
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		return fill(v.Elem(), path)
	case reflect.Struct:
		n := 0
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				n += fill(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
		return n
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		return fill(v.Index(0), path+"[0]") + fill(v.Index(1), path+"[1]")
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		n := 0
		for _, k := range []string{"b-key", "a-key"} {
			e := reflect.New(v.Type().Elem()).Elem()
			n += fill(e, path+"."+k)
			v.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		}
		return n
	case reflect.String:
		v.SetString("s<&>\"" + path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(len(path)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(len(path)))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(len(path)) / 4)
	}
	return 0
}

// compareWithEncodingJSON checks that view is what encoding/json makes of
// v except that durations, numbers there, are strings that parse back to
// the same duration here. It returns how many durations it saw.
func compareWithEncodingJSON(t *testing.T, v any, view []byte) int {
	t.Helper()
	std, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	var a, b any
	if err := json.Unmarshal(std, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(view, &b); err != nil {
		t.Fatalf("view is not JSON: %v\n%s", err, view)
	}
	durations := 0
	var walk func(path string, a, b any)
	walk = func(path string, a, b any) {
		switch a := a.(type) {
		case map[string]any:
			bm, ok := b.(map[string]any)
			if !ok || len(bm) != len(a) {
				t.Errorf("%s: view %v, encoding/json %v", path, b, a)
				return
			}
			for k, av := range a {
				walk(path+"."+k, av, bm[k])
			}
		case []any:
			bs, ok := b.([]any)
			if !ok || len(bs) != len(a) {
				t.Errorf("%s: view %v, encoding/json %v", path, b, a)
				return
			}
			for i := range a {
				walk(fmt.Sprintf("%s[%d]", path, i), a[i], bs[i])
			}
		case float64:
			if s, ok := b.(string); ok {
				d, err := time.ParseDuration(s)
				if err != nil || float64(d) != a {
					t.Errorf("%s: view %q, want a duration of %vns", path, s, a)
				}
				durations++
				return
			}
			if b != a {
				t.Errorf("%s: view %v, encoding/json %v", path, b, a)
			}
		default:
			if b != a {
				t.Errorf("%s: view %#v, encoding/json %#v", path, b, a)
			}
		}
	}
	walk("", a, b)
	return durations
}

func TestConfigEndpointEveryField(t *testing.T) {
	var c config.Config
	want := fill(reflect.ValueOf(&c).Elem(), "")
	if want == 0 {
		t.Fatal("config has no durations? the test fill is broken")
	}
	srv := serve(t, Options{Config: func() *config.Config { return &c }})
	got := do(t, srv, http.MethodGet, PathConfig)
	if got.code != http.StatusOK || !strings.HasPrefix(got.header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, type %q: %s", got.code, got.header.Get("Content-Type"), got.body)
	}
	if n := compareWithEncodingJSON(t, &c, []byte(got.body)); n != want {
		t.Errorf("saw %d durations as strings, config has %d", n, want)
	}
}

// TestConfigGolden pins the admin view of a typical config. After a
// schema change: go test ./pkg/admin -run TestConfigGolden -update
func TestConfigGolden(t *testing.T) {
	retries := 2
	access := false
	c := &config.Config{
		Listeners: []config.Listener{
			{Name: "http", Address: ":8080", Protocol: config.ProtocolHTTP},
			{Name: "https", Protocol: config.ProtocolHTTPS, TLS: &config.ListenerTLS{
				Certificates: []config.Certificate{{Cert: "/etc/handoff/tls/site.pem", Key: "/etc/handoff/tls/site.key"}},
				MinVersion:   "1.3",
			}},
		},
		Routes: []config.Route{
			{Name: "api", Match: config.Match{Host: "api.example.com", PathPrefix: "/v1/", Methods: []string{"GET", "POST"},
				Headers: map[string]string{"X-Tenant": "blue", "Authorization": config.RedactedValue}}, Upstream: "api"},
			{Upstream: "web"},
		},
		Upstreams: map[string]config.Upstream{
			"web": {Targets: []config.Target{{Address: "127.0.0.1:3000"}}},
			"api": {
				Strategy: config.StrategyHash, HashKey: "header:X-User",
				Targets: []config.Target{{Address: "10.0.0.1:80", Weight: 3}, {Address: "h2c://10.0.0.2:80"}},
				TLS:     config.UpstreamTLS{ServerName: "api.internal"},
				Retries: &retries, FailTimeout: 90 * time.Second, MaxIdlePerTarget: 32,
				Timeouts: config.UpstreamTimeouts{Dial: 2 * time.Second, TLSHandshake: 5 * time.Second, ResponseHeader: time.Minute, IdleConn: 90 * time.Second},
			},
		},
		Admin:           config.Admin{Listen: "127.0.0.1:9901"},
		Log:             config.Log{Level: "info", Format: "json", Access: &access},
		Timeouts:        config.ServerTimeouts{ReadHeader: 10 * time.Second, Idle: 2 * time.Minute, Request: 1500 * time.Millisecond},
		Limits:          config.Limits{MaxHeaderBytes: 65536, MaxRequestBody: 10 << 20},
		TrustedProxies:  []string{"10.0.0.0/8", "::1"},
		ShutdownTimeout: time.Hour,
	}
	srv := serve(t, Options{Config: func() *config.Config { return c }})
	got := do(t, srv, http.MethodGet, PathConfig)
	if got.code != http.StatusOK {
		t.Fatalf("status %d: %s", got.code, got.body)
	}
	golden := filepath.Join("testdata", "config.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got.body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got.body != string(want) {
		t.Errorf("config view differs from %s (run with -update after a schema change):\n%s", golden, got.body)
	}
	compareWithEncodingJSON(t, c, []byte(got.body))
}

type embedded struct {
	Inner string `json:"inner"`
	Skip  int    `json:"-"`
}

// stamped is unexported: encoding/json still inlines its fields.
type stamped struct {
	At time.Time `json:"at"`
}

type tagged struct {
	embedded
	stamped
	*Ptr
	Plain     string
	Renamed   int               `json:"renamed"`
	Empty     string            `json:"empty,omitempty"`
	EmptyList []int             `json:"empty_list,omitempty"`
	NilList   []int             `json:"nil_list"`
	When      time.Time         `json:"when,omitzero"`
	WhenSet   time.Time         `json:"when_set"`
	Addr      netip.Addr        `json:"addr"`
	Bytes     []byte            `json:"bytes"`
	IntKeys   map[int]string    `json:"int_keys"`
	Nested    map[string][]bool `json:"nested"`
	Array     [2]float64        `json:"array"`
	Iface     any               `json:"iface"`
	NilPtr    *int              `json:"nil_ptr"`
	HTML      string            `json:"html"`
	unexp     int
}

type Ptr struct {
	P string `json:"p,omitempty"`
}

func TestMarshalViewMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{name: "route", v: config.Route{Name: "r", Match: config.Match{Host: "*.example.com", Headers: map[string]string{"b": "2", "a": "1"}}, Upstream: "u"}},
		{name: "listener with tls", v: config.Listener{Name: "https", TLS: &config.ListenerTLS{MinVersion: "1.2"}}},
		{name: "zero listener", v: config.Listener{}},
		{name: "tags, embedding and marshalers", v: tagged{
			embedded: embedded{Inner: "in", Skip: 7},
			stamped:  stamped{At: base},
			Ptr:      &Ptr{P: "p"},
			Plain:    "plain", Renamed: 3, EmptyList: []int{},
			WhenSet: base, Addr: netip.MustParseAddr("2001:db8::1"), Bytes: []byte("hi"),
			IntKeys: map[int]string{10: "ten", 2: "two"}, Nested: map[string][]bool{"x": {true, false}},
			Array: [2]float64{1.5, -2}, Iface: map[string]any{"k": []any{1.0, "s"}}, HTML: "<a&b>", unexp: 1,
		}},
		{name: "zero tagged", v: tagged{}},
		{name: "pointer to struct", v: &config.Admin{Listen: "off"}},
		{name: "nil pointer", v: (*config.Config)(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := marshalView(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("view\n %s\nencoding/json\n %s", got, want)
			}
		})
	}
}

func TestMarshalViewDurations(t *testing.T) {
	type withDurations struct {
		D    time.Duration            `json:"d"`
		Opt  time.Duration            `json:"opt,omitempty"`
		List []time.Duration          `json:"list"`
		Map  map[string]time.Duration `json:"map"`
		Ptr  *time.Duration           `json:"ptr"`
	}
	d := 1500 * time.Millisecond
	tests := []struct {
		name string
		v    withDurations
		want string
	}{
		{name: "zero", v: withDurations{}, want: `{"d":"0s","list":null,"map":null,"ptr":null}`},
		{
			name: "set",
			v:    withDurations{D: time.Minute, Opt: time.Hour, List: []time.Duration{time.Second, 90 * time.Minute}, Map: map[string]time.Duration{"k": 2 * time.Millisecond}, Ptr: &d},
			want: `{"d":"1m","opt":"1h","list":["1s","1h30m"],"map":{"k":"2ms"},"ptr":"1.5s"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := marshalView(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

type cyclic struct {
	Next *cyclic `json:"next"`
}

type badKey struct {
	M map[[2]int]string `json:"m"`
}

func TestMarshalViewErrors(t *testing.T) {
	loop := &cyclic{}
	loop.Next = loop
	tests := []struct {
		name string
		v    any
		want error // nil: any error
	}{
		{name: "pointer cycle", v: loop, want: errTooDeep},
		{name: "unsupported map key", v: badKey{M: map[[2]int]string{{1, 2}: "x"}}},
		{name: "func value", v: struct{ F func() }{F: func() {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := marshalView(tc.v)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzMarshalView(f *testing.F) {
	f.Add("api", "*.example.com", "X-Tenant", "blue", "10.0.0.1:80", int64(30*time.Second), 3)
	f.Add("", "", "", "", "", int64(0), 0)
	f.Add("\xff\xfe", "<script>", "\u2028", "\"\\", "h2c://[::1]:80", int64(-1), -5)
	f.Add("r", "h", "k", "v", "a", int64(1<<63-1), 1<<30)
	f.Fuzz(func(t *testing.T, name, host, hk, hv, addr string, d int64, weight int) {
		c := &config.Config{
			Routes:          []config.Route{{Name: name, Match: config.Match{Host: host, Headers: map[string]string{hk: hv}}, Upstream: name}},
			Upstreams:       map[string]config.Upstream{name: {Targets: []config.Target{{Address: addr, Weight: weight}}, FailTimeout: time.Duration(d)}},
			ShutdownTimeout: time.Duration(d),
		}
		got, err := marshalView(c)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(got) {
			t.Fatalf("invalid JSON: %s", got)
		}
		if n := compareWithEncodingJSON(t, c, got); n < 2 {
			// ShutdownTimeout and FailTimeout at least; others are zero
			// durations, also strings.
			t.Errorf("saw %d durations, want at least 2", n)
		}
	})
}
