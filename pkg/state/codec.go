package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// verdictVersion is the wire version written by EncodeVerdict. Fields may be
// added within a version (readers ignore unknown ones); a change that older
// readers would misread needs a new version, which they skip.
const verdictVersion = 1

// MaxEncodedVerdict bounds an encoded verdict; a longer value is not ours.
const MaxEncodedVerdict = 64 << 10

// ErrUnknownVersion marks a verdict encoded by a newer (or foreign) writer.
var ErrUnknownVersion = errors.New("unknown verdict version")

type wireVerdict struct {
	V            int       `json:"v"`
	Upstream     string    `json:"upstream"`
	Target       string    `json:"target"`
	Healthy      bool      `json:"healthy"`
	Since        time.Time `json:"since,omitzero"`
	Reason       string    `json:"reason,omitempty"`
	CheckedAt    time.Time `json:"checked_at,omitzero"`
	Holder       string    `json:"holder,omitempty"`
	Ejections    int       `json:"ejections,omitempty"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
}

// EncodeVerdict returns v's versioned JSON encoding.
func EncodeVerdict(v Verdict) ([]byte, error) {
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("encode verdict: %w: %w", ErrInvalid, err)
	}
	b, err := json.Marshal(wireVerdict{
		V: verdictVersion, Upstream: v.Upstream, Target: v.Target, Healthy: v.Healthy,
		Since: v.Since, Reason: v.Reason, CheckedAt: v.CheckedAt, Holder: v.Holder,
		Ejections: v.Ejections, EjectedUntil: v.EjectedUntil,
	})
	if err != nil {
		return nil, fmt.Errorf("encode verdict: %w", err)
	}
	return b, nil
}

// DecodeVerdict parses a value written by EncodeVerdict. Anything else
// (another version, other JSON, garbage) is an error, never a panic: the
// value may come from a key someone else wrote.
func DecodeVerdict(b []byte) (Verdict, error) {
	if len(b) > MaxEncodedVerdict {
		return Verdict{}, fmt.Errorf("decode verdict: %d bytes, more than %d", len(b), MaxEncodedVerdict)
	}
	var w wireVerdict
	if err := json.Unmarshal(b, &w); err != nil {
		return Verdict{}, fmt.Errorf("decode verdict: %w", err)
	}
	if w.V != verdictVersion {
		return Verdict{}, fmt.Errorf("decode verdict: version %d: %w", w.V, ErrUnknownVersion)
	}
	v := Verdict{
		Upstream: w.Upstream, Target: w.Target, Healthy: w.Healthy, Since: w.Since,
		Reason: w.Reason, CheckedAt: w.CheckedAt, Holder: w.Holder,
		Ejections: w.Ejections, EjectedUntil: w.EjectedUntil,
	}
	if err := v.Validate(); err != nil {
		return Verdict{}, fmt.Errorf("decode verdict: %w", err)
	}
	return v, nil
}
