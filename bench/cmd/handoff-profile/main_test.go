package main

import (
	"bytes"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunNeedsConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "no -c", args: nil},
		{name: "missing file", args: []string{"-c", "/nonexistent/handoff.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(t.Context(), tt.args, &bytes.Buffer{}); err == nil {
				t.Fatal("want error")
			}
		})
	}
}
