package statetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/state"
)

func member(id string, gen uint64) state.Member {
	return state.Member{ID: id, Version: "v1.2.3", Started: t0, Beat: t0.Add(time.Duration(gen) * time.Second),
		Listeners: []string{"web 127.0.0.1:80"}, Generation: gen, Upgrades: 1}
}

func sortedMembers(t *testing.T, s state.Store) []state.Member {
	t.Helper()
	ms, err := s.Members(t.Context())
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	slices.SortFunc(ms, func(a, b state.Member) int { return strings.Compare(a.ID, b.ID) })
	return ms
}

func sameMembers(a, b []state.Member) bool {
	return slices.EqualFunc(a, b, func(x, y state.Member) bool {
		return x.ID == y.ID && x.Version == y.Version && x.Started.Equal(y.Started) && x.Beat.Equal(y.Beat) &&
			slices.Equal(x.Listeners, y.Listeners) && x.Generation == y.Generation && x.Upgrades == y.Upgrades
	})
}

func testFleet(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	beat := func(t *testing.T, s state.Store, m state.Member, ttl time.Duration) {
		t.Helper()
		if err := s.Heartbeat(ctx, m, ttl); err != nil {
			t.Fatalf("Heartbeat(%q): %v", m.ID, err)
		}
	}
	t.Run("members see each other, latest beat wins", func(t *testing.T) {
		s := newStores(t, 2)
		if ms := sortedMembers(t, s[0]); len(ms) != 0 {
			t.Fatalf("fresh backend has members %v", ms)
		}
		beat(t, s[0], member("host-a:1", 1), time.Minute)
		beat(t, s[1], member("host-b:2", 1), time.Minute)
		beat(t, s[0], member("host-a:1", 2), time.Minute)
		want := []state.Member{member("host-a:1", 2), member("host-b:2", 1)}
		for i, st := range s {
			if got := sortedMembers(t, st); !sameMembers(got, want) {
				t.Fatalf("store %d: Members() = %+v, want %+v", i, got, want)
			}
		}
	})
	t.Run("silent member drops out", func(t *testing.T) {
		s := newStores(t, 2)
		beat(t, s[0], member("short", 1), 200*time.Millisecond)
		beat(t, s[1], member("long", 1), time.Minute)
		eventually(t, 3*time.Second, "the silent member expires", func() bool {
			ms := sortedMembers(t, s[1])
			return len(ms) == 1 && ms[0].ID == "long"
		})
	})
	t.Run("invalid arguments", func(t *testing.T) {
		s := newStores(t, 1)[0]
		if err := s.Heartbeat(ctx, state.Member{}, time.Second); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Heartbeat without id = %v, want ErrInvalid", err)
		}
		if err := s.Heartbeat(ctx, member("m", 1), 0); !errors.Is(err, state.ErrInvalid) {
			t.Errorf("Heartbeat with zero ttl = %v, want ErrInvalid", err)
		}
	})
}
