// Package testlog is a log sink for tests: goroutines write to it while a
// test reads what they wrote, waits for a line, or decodes the JSON
// records of a slog handler. Test code only.
package testlog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer collects log output written from many goroutines. The zero
// value is ready to use.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced on each Write
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil {
		close(s.written)
		s.written = nil
	}
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logger is a JSON slog logger at debug level writing to s.
func (s *Buffer) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// WaitFor blocks until the output contains want, for at most 10 seconds.
func (s *Buffer) WaitFor(t testing.TB, want string) string {
	t.Helper()
	return s.WaitForN(t, want, 1)
}

// WaitForN blocks until the output contains want n times, for at most 10
// seconds.
func (s *Buffer) WaitForN(t testing.TB, want string, n int) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		got := s.b.String()
		if strings.Count(got, want) >= n {
			s.mu.Unlock()
			return got
		}
		if s.written == nil {
			s.written = make(chan struct{})
		}
		ch := s.written
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("logs never contained %q %d times: %s", want, n, got)
			return ""
		}
	}
}

// Records returns the JSON records logged at level, decoded.
func (s *Buffer) Records(t testing.TB, level slog.Level) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["level"] == level.String() {
			out = append(out, m)
		}
	}
	return out
}
