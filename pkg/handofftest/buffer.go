package handofftest

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer that a logger (or a child process) may write
// while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Count is how many times sub was written so far.
func (s *Buffer) Count(sub string) int { return strings.Count(s.String(), sub) }
