package state_test

import (
	"errors"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
)

func TestVerdictCodec(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    state.Verdict
		wantErr error
	}{
		{name: "minimal", in: `{"v":1,"upstream":"web","target":"10.0.0.1:80","healthy":true}`,
			want: state.Verdict{Upstream: "web", Target: "10.0.0.1:80", Healthy: true}},
		{name: "full", in: `{"v":1,"upstream":"web","target":"a:1","healthy":false,"since":"2025-03-01T12:00:00.123456789Z","reason":"status 503","checked_at":"2025-03-01T12:00:00.123456789Z","holder":"host/1","ejections":3,"ejected_until":"2025-03-01T12:00:00.123456789Z"}`,
			want: state.Verdict{Upstream: "web", Target: "a:1", Since: now, Reason: "status 503", CheckedAt: now, Holder: "host/1", Ejections: 3, EjectedUntil: now}},
		{name: "unknown fields ignored", in: `{"v":1,"upstream":"u","target":"t","future":[1,2]}`,
			want: state.Verdict{Upstream: "u", Target: "t"}},
		{name: "newer version", in: `{"v":2,"upstream":"u","target":"t"}`, wantErr: state.ErrUnknownVersion},
		{name: "no version", in: `{"upstream":"u","target":"t"}`, wantErr: state.ErrUnknownVersion},
		{name: "garbage", in: `not json`, wantErr: errAny},
		{name: "wrong type", in: `{"v":1,"upstream":7,"target":"t"}`, wantErr: errAny},
		{name: "no target", in: `{"v":1,"upstream":"u"}`, wantErr: errAny},
		{name: "negative ejections", in: `{"v":1,"upstream":"u","target":"t","ejections":-1}`, wantErr: errAny},
		{name: "json null", in: `null`, wantErr: state.ErrUnknownVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := state.DecodeVerdict([]byte(tt.in))
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("DecodeVerdict = %+v, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeVerdict: %v", err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("DecodeVerdict = %+v, want %+v", got, tt.want)
			}
			b, err := state.EncodeVerdict(got)
			if err != nil {
				t.Fatalf("EncodeVerdict: %v", err)
			}
			again, err := state.DecodeVerdict(b)
			if err != nil || !again.Equal(got) {
				t.Fatalf("round trip = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestEncodeVerdictRejectsInvalid(t *testing.T) {
	if _, err := state.EncodeVerdict(state.Verdict{Target: "t"}); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("EncodeVerdict without upstream: %v, want ErrInvalid", err)
	}
}

func FuzzDecodeVerdict(f *testing.F) {
	f.Add([]byte(`{"v":1,"upstream":"web","target":"10.0.0.1:80","healthy":true}`))
	f.Add([]byte(`{"v":1,"upstream":"u","target":"t","since":"2025-03-01T12:00:00+01:00","ejections":2}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`garbage`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := state.DecodeVerdict(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same verdict.
		enc, err := state.EncodeVerdict(v)
		if err != nil {
			t.Fatalf("EncodeVerdict(%+v) of a decoded value: %v", v, err)
		}
		again, err := state.DecodeVerdict(enc)
		if err != nil || !again.Equal(v) {
			t.Fatalf("round trip of %q = %+v, %v; want %+v", b, again, err, v)
		}
	})
}

func FuzzDecodeMember(f *testing.F) {
	b, _ := state.EncodeMember(state.Member{ID: "h:1", Version: "v", Listeners: []string{"web :80"}, Generation: 3})
	f.Add(b)
	f.Add([]byte(`{"v":2,"id":"x"}`))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := state.DecodeMember(b)
		if err != nil {
			return
		}
		again, err := state.EncodeMember(m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		if _, err := state.DecodeMember(again); err != nil {
			t.Fatalf("round trip of %q: %v", again, err)
		}
	})
}
