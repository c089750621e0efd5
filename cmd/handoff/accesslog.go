package main

import (
	"io"
	"log/slog"

	"github.com/handoff-proxy/handoff/pkg/accesslog"
	"github.com/handoff-proxy/handoff/pkg/config"
)

// accessLog is where the access lines of this process go: log.access_file
// or stdout, in log.access_format.
type accessLog struct {
	// logger is nil when the access lines go through the process
	// logger (no access_format, no access_file): the server uses its
	// Logger then.
	logger *slog.Logger
	file   *accesslog.File // nil for stdout
}

// newAccessLog opens the access log lc asks for. Without access_file and
// access_format the access lines stay in the process log, as before
// those keys existed.
func newAccessLog(stdout io.Writer, lc config.Log, logger *slog.Logger) (*accessLog, error) {
	a := &accessLog{}
	if lc.AccessFile == "" && lc.AccessFormat == "" {
		return a, nil
	}
	w := stdout
	if lc.AccessFile != "" {
		f, err := accesslog.OpenFile(lc.AccessFile)
		if err != nil {
			return nil, err
		}
		a.file, w = f, f
		logger.Info("access log", "file", lc.AccessFile, "format", lc.AccessFormat)
	}
	format := lc.AccessFormat
	if format == "" && lc.Format == "text" {
		format = accesslog.FormatLogfmt // log.format's style, in the file
	}
	a.logger = slog.New(accesslog.NewHandler(w, format))
	return a, nil
}

// reopen opens the access log file again (logrotate moved it away); a
// no-op when the lines go to stdout.
func (a *accessLog) reopen() error {
	if a.file == nil {
		return nil
	}
	return a.file.Reopen()
}

func (a *accessLog) close() {
	if a.file != nil {
		_ = a.file.Close()
	}
}
