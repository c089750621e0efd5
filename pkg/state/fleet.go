package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Member is one process's heartbeat: who it is and when it last said so.
// The dashboard lists the members to show a fleet agreeing.
type Member struct {
	// ID is the process's holder ID (host:pid), the same it uses for
	// leases and verdicts. Required.
	ID string
	// Version is the binary's version. Empty means unknown.
	Version string
	// Started is when the process started. Zero means unknown.
	Started time.Time
	// Beat is when this heartbeat was sent. Zero means unknown.
	Beat time.Time
	// Listeners names the process's traffic listeners with their
	// addresses ("web 0.0.0.0:80"). Nil means none.
	Listeners []string
	// Generation counts the process's reloads since it started.
	Generation uint64
	// Upgrades counts the upgrades that led to this process.
	Upgrades int
}

// Fleet tells processes sharing a backend about each other.
type Fleet interface {
	// Heartbeat stores m for ttl (which must be positive), replacing m.ID's
	// previous heartbeat. A member not heard from for ttl drops out.
	Heartbeat(ctx context.Context, m Member, ttl time.Duration) error
	// Members returns every member whose heartbeat has not expired, in no
	// particular order. Values the store cannot decode are skipped.
	Members(ctx context.Context) ([]Member, error)
}

// MaxEncodedMember bounds an encoded heartbeat; a longer value is not ours.
const MaxEncodedMember = 16 << 10

// memberVersion is the wire version of EncodeMember, versioned like
// verdicts: fields may be added within a version.
const memberVersion = 1

type wireMember struct {
	V          int       `json:"v"`
	ID         string    `json:"id"`
	Version    string    `json:"version,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Beat       time.Time `json:"beat,omitzero"`
	Listeners  []string  `json:"listeners,omitempty"`
	Generation uint64    `json:"generation,omitempty"`
	Upgrades   int       `json:"upgrades,omitempty"`
}

// CheckHeartbeatArgs reports whether Heartbeat arguments are usable.
func CheckHeartbeatArgs(m Member, ttl time.Duration) error {
	switch {
	case m.ID == "":
		return fmt.Errorf("heartbeat without member id: %w", ErrInvalid)
	case ttl <= 0:
		return fmt.Errorf("heartbeat of %q with ttl %v: %w", m.ID, ttl, ErrInvalid)
	}
	return nil
}

// EncodeMember returns m's versioned JSON encoding.
func EncodeMember(m Member) ([]byte, error) {
	if m.ID == "" {
		return nil, fmt.Errorf("encode member: no id: %w", ErrInvalid)
	}
	b, err := json.Marshal(wireMember{V: memberVersion, ID: m.ID, Version: m.Version, Started: m.Started,
		Beat: m.Beat, Listeners: m.Listeners, Generation: m.Generation, Upgrades: m.Upgrades})
	if err != nil {
		return nil, fmt.Errorf("encode member: %w", err)
	}
	return b, nil
}

// DecodeMember parses a value written by EncodeMember; anything else is an
// error, never a panic.
func DecodeMember(b []byte) (Member, error) {
	if len(b) > MaxEncodedMember {
		return Member{}, fmt.Errorf("decode member: %d bytes, more than %d", len(b), MaxEncodedMember)
	}
	var w wireMember
	if err := json.Unmarshal(b, &w); err != nil {
		return Member{}, fmt.Errorf("decode member: %w", err)
	}
	if w.V != memberVersion {
		return Member{}, fmt.Errorf("decode member: version %d: %w", w.V, ErrUnknownVersion)
	}
	if w.ID == "" {
		return Member{}, errors.New("decode member: no id")
	}
	return Member{ID: w.ID, Version: w.Version, Started: w.Started, Beat: w.Beat,
		Listeners: w.Listeners, Generation: w.Generation, Upgrades: w.Upgrades}, nil
}
