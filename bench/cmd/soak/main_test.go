package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "bad DURATION", env: map[string]string{"DURATION": "forever"}},
		{name: "unknown flag", args: []string{"-nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			if err := run(t.Context(), tt.args, &bytes.Buffer{}, &bytes.Buffer{}, getenv); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

func TestPinSelfRejectsBadList(t *testing.T) {
	for _, l := range []string{"x", "0-y"} {
		if err := pinSelf(l); err == nil {
			t.Errorf("pinSelf(%q): want error", l)
		}
	}
}
