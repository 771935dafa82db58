package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the flusher goroutine and the
// test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // writes
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return l.b.Write(p)
}

func (l *lockedBuffer) get() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.n
}

// Audit lines wait for a tick, then go out in one write.
func TestAuditWriterFlushesOnTick(t *testing.T) {
	var out lockedBuffer
	ticks := make(chan time.Time)
	a := newAuditWriter(&out, ticks)
	defer a.Close()
	line := `{"msg":"call"}` + "\n"
	for range 3 {
		a.Write([]byte(line))
	}
	if got, _ := out.get(); got != "" {
		t.Fatalf("lines written before a tick: %q", got)
	}
	ticks <- time.Time{} // unbuffered: the flusher has taken it
	ticks <- time.Time{} // so it has finished the flush of the first
	if got, n := out.get(); got != strings.Repeat(line, 3) || n != 1 {
		t.Fatalf("after a tick: %d writes of %q, want 1 write of 3 lines", n, got)
	}
}

// A full batch goes at once, without waiting for a tick; Close writes
// what is left. No tick ever comes here: a flush of the last tick would
// otherwise race with the writes.
func TestAuditWriterBatches(t *testing.T) {
	var out lockedBuffer
	a := newAuditWriter(&out, nil)
	big := bytes.Repeat([]byte("x"), auditBatchMax/2)
	big[len(big)-1] = '\n'
	a.Write(big)
	a.Write(big)
	if _, n := out.get(); n != 0 {
		t.Fatalf("%d writes of a batch that is not full yet, want 0", n)
	}
	a.Write(big) // does not fit with the two before: they go first
	if got, n := out.get(); n != 1 || len(got) != 2*len(big) {
		t.Fatalf("after a full batch: %d writes, %d bytes; want 1 write, %d bytes", n, len(got), 2*len(big))
	}
	a.Close()
	if got, n := out.get(); n != 2 || len(got) != 3*len(big) {
		t.Fatalf("after Close: %d writes, %d bytes; want 2 writes, %d bytes", n, len(got), 3*len(big))
	}
}
