package main

import (
	"io"
	"sync"
	"time"
)

// auditWriter batches audit lines on their way to stdout: one write per
// flush instead of one per call, which on a log pipe also spares its
// reader (the container runtime, on the pod's cores) a wake-up per call.
// Lines are flushed when 64 KiB are pending, at every tick
// (--audit-flush-interval) and on Close, at shutdown. A crash that
// gives no time to close (SIGKILL, OOM) loses at most one interval of
// lines.
type auditWriter struct {
	out  io.Writer
	stop chan struct{}
	done chan struct{}

	mu  sync.Mutex
	buf []byte
}

// auditBatchMax is how many bytes of lines wait at most.
const auditBatchMax = 64 << 10

// newAuditWriter writes batches to out, flushing at every tick.
func newAuditWriter(out io.Writer, ticks <-chan time.Time) *auditWriter {
	a := &auditWriter{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			select {
			case <-ticks:
				a.Flush()
			case <-a.stop:
				return
			}
		}
	}()
	return a
}

// Write takes whole lines: slog's handler writes one record per call.
func (a *auditWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.buf)+len(p) > auditBatchMax {
		a.flushLocked()
	}
	a.buf = append(a.buf, p...)
	return len(p), nil
}

// Flush writes the pending lines.
func (a *auditWriter) Flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.flushLocked()
}

func (a *auditWriter) flushLocked() {
	if len(a.buf) == 0 {
		return
	}
	// A failed write (stdout closed) has nowhere to be reported; the
	// lines are dropped rather than piling up.
	a.out.Write(a.buf)
	a.buf = a.buf[:0]
}

// Close stops the ticking and writes what is pending.
func (a *auditWriter) Close() error {
	close(a.stop)
	<-a.done
	a.Flush()
	return nil
}
