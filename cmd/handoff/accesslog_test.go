package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
	"github.com/handoff-proxy/handoff/pkg/config"
)

func TestNewAccessLog(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		log      config.Log
		wantNil  bool   // lines stay in the process log
		inFile   string // the line, in the file, contains
		inStdout string
	}{
		{name: "nothing set", log: config.Log{Format: "json"}, wantNil: true},
		{name: "format on stdout", log: config.Log{AccessFormat: "combined"}, inStdout: `"-" 400 -`},
		{name: "file in log.format text", log: config.Log{Format: "text", AccessFile: filepath.Join(dir, "a.log")}, inFile: "status=400"},
		{name: "file in json", log: config.Log{AccessFormat: "json", AccessFile: filepath.Join(dir, "b.log")}, inFile: `"status":400`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			a, err := newAccessLog(&stdout, tt.log, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer a.close()
			if (a.logger == nil) != tt.wantNil {
				t.Fatalf("logger = %v, want nil %v", a.logger, tt.wantNil)
			}
			if tt.wantNil {
				return
			}
			accesslog.ServerAnswer(a.logger, "192.0.2.1:1", 400, time.Now())
			if tt.inStdout != "" && !strings.Contains(stdout.String(), tt.inStdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.inStdout)
			}
			if tt.inFile != "" {
				b, _ := os.ReadFile(tt.log.AccessFile)
				if !strings.Contains(string(b), tt.inFile) || stdout.Len() != 0 {
					t.Errorf("file %q lacks %q (stdout %q)", b, tt.inFile, stdout.String())
				}
				if err := a.reopen(); err != nil {
					t.Errorf("reopen: %v", err)
				}
			}
		})
	}
}
