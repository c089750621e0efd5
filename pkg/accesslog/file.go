package accesslog

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// File is an access log file opened for appending (O_APPEND: every
// record lands at the end even when another process writes the file
// too) that can be reopened at the same path: logrotate renames the
// file, then the postrotate step (`systemctl reload handoff`) makes the
// process open a new one, without copytruncate and its lost lines.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenFile opens path for appending, creating it (mode 0640) when it
// does not exist.
func OpenFile(path string) (*File, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	return f, nil
}

// Write appends one record. Each slog handler writes a record in one
// call, so records are never interleaved.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	return l.f.Write(p)
}

// Reopen opens the path again and writes there from now on. When the
// path cannot be opened, the old file is kept (nothing is lost) and the
// error returned.
func (l *File) Reopen() error {
	f, err := openAppend(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old == nil {
		return nil
	}
	return old.Close()
}

// Close closes the file; later writes fail with os.ErrClosed.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("access log already closed")
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Path is the file's path.
func (l *File) Path() string { return l.path }
