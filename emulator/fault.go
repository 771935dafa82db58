package emulator

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Fault makes the Chat API fail, drop or slow down requests, to test how
// a client retries. A fault acts on a request that has passed
// authentication and the scope and space checks; a request with a bad
// token or scope is answered as usual whatever faults are active.
//
// A fault does one of three things to a request it applies to:
//
//   - answer Status (429 or a 5xx) with Google's error body, and change
//     nothing;
//   - with Reset, read the request and drop the connection without any
//     answer (the client sees EOF or ECONNRESET). The call takes no effect,
//     or with ResetAfterEffect it takes effect first;
//   - with only Latency (Status 0 and no Reset), serve the call normally,
//     just later.
//
// Latency, when set, is waited for before any of that, in real time (not
// Config.Now). If the client gives up during the wait (the request's
// context ends), the request is abandoned: it takes no effect, is logged
// with status 499, and nothing more is sent.
//
// Faults are checked in the order they were added, against each request
// after its authorization checks:
//
//   - a fault applies when Method and Spaces match and, with a Fraction,
//     when its coin comes up; the coin is tossed only for a fault that
//     could still apply, so with a fixed Config.Seed a sequence of
//     requests meets the same faults every run;
//   - every latency-only fault that applies adds its Latency, wherever it
//     stands in the list;
//   - the first failing fault (Status or Reset) that applies answers the
//     request, after its own Latency; later failing faults are not
//     checked and not used up.
//
// A fault with Times is used up when it applies (for a failing fault: each
// injected failure; for a latency-only fault: each delayed request), even
// if the client then gives up during the latency.
type Fault struct {
	// Method is the catalog id of the method to fail
	// ("spaces.messages.create"); "" fails every method.
	Method string
	// Status is the HTTP status to answer with: 429 (Google's quota error,
	// RESOURCE_EXHAUSTED with an ErrorInfo of reason RATE_LIMIT_EXCEEDED
	// and a Help link, and, as Chat's quota errors usually are, without
	// Retry-After or RetryInfo unless RetryAfter is set) or a 5xx. It must be 0 with Reset; 0
	// without Reset makes a latency-only fault.
	Status int
	// RetryAfter, when positive, is sent as a Retry-After header (whole
	// seconds, rounded up) and as a RetryInfo detail; 0 sends neither.
	RetryAfter time.Duration
	// Times is how many times the fault applies before it is removed; 0
	// (or negative) means every time until ClearFaults.
	Times int
	// Fraction, between 0 and 1, is the probability that the fault
	// applies to each matching request, drawn independently from the
	// emulator's random source (Config.Seed, SetSeed). 0 means every
	// matching request. With Times the fault still ends after Times
	// injected failures; without, it lasts until ClearFaults.
	Fraction float64
	// Reset drops the connection instead of answering: the emulator reads
	// the request, logs it with status 0 and closes the connection with a
	// TCP reset (over HTTP/2, where a handler cannot take over the
	// connection, the stream is reset instead). The call takes no effect
	// unless ResetAfterEffect is set. Go's http.Transport silently retries
	// a GET (not a POST) once when a reused connection breaks, so a single
	// reset of a GET may go unnoticed by a Go client.
	Reset bool
	// ResetAfterEffect makes a reset happen after the call has taken
	// effect: the message (or space, membership…) is created as usual and
	// then the answer is lost, the case that makes a client's blind retry
	// create a duplicate unless it sends a requestId. It implies Reset.
	ResetAfterEffect bool
	// Latency is waited for before the fault acts; see the type's
	// documentation. A Fault with only Latency slows calls without failing
	// them.
	Latency time.Duration
	// Spaces, when not empty, limits the fault to calls addressing one of
	// these spaces ("spaces/ID"; a bare ID is accepted), for per-space
	// quota tests. Methods that address no space (spaces.list,
	// spaces.create, spaces.setup, …) never match such a fault.
	Spaces []string
}

type fault struct {
	Fault
	left int // for Times > 0
}

// latencyOnly reports whether f slows calls without failing them.
func (f *Fault) latencyOnly() bool { return f.Status == 0 && !f.Reset }

// normalize checks f and returns it with space names completed and Reset
// set when ResetAfterEffect is. The error reads as a sentence fragment.
func (f Fault) normalize() (Fault, error) {
	if f.ResetAfterEffect {
		f.Reset = true
	}
	switch {
	case math.IsNaN(f.Fraction) || f.Fraction < 0 || f.Fraction > 1:
		return f, fmt.Errorf("fraction %v is not between 0 and 1", f.Fraction)
	case f.Latency < 0:
		return f, fmt.Errorf("latency %v is negative", f.Latency)
	case f.Reset && f.Status != 0:
		return f, fmt.Errorf("status %d with reset: a reset sends no status, leave it 0", f.Status)
	case f.Reset:
	case f.Status == 0 && f.Latency > 0: // latency only
	case f.Status != http.StatusTooManyRequests && (f.Status < 500 || f.Status > 599):
		return f, fmt.Errorf("status %d is neither 429 nor 5xx (or set reset, or latency alone)", f.Status)
	}
	if f.Method != "" {
		m, ok := chatapi.Lookup(f.Method)
		if !ok {
			return f, fmt.Errorf("%q is no Chat method id (e.g. spaces.messages.create)", f.Method)
		}
		f.Method = m.ID
	}
	if len(f.Spaces) > 0 {
		spaces := make([]string, len(f.Spaces))
		for i, s := range f.Spaces {
			if !strings.HasPrefix(s, "spaces/") {
				s = "spaces/" + s
			}
			if !validSpaceName(s) {
				return f, fmt.Errorf(`spaces[%d]: %q is not a space name like "spaces/AAAA"`, i, f.Spaces[i])
			}
			spaces[i] = s
		}
		f.Spaces = spaces
	}
	return f, nil
}

// FaultMix is the fault mix of a chaos run: of the calls to method, a
// share rate (between 0 and 1) fails, as 503 (30% of the failures), 500
// (15%), 429 with Retry-After: 1 (15%), a connection reset before the
// call takes effect (20%) and a reset after it has (20%). Faults are
// checked in order, each with its own coin, so each Fraction is taken of
// what the faults before it left. A rate of 0 or less returns nil.
//
// The 429 says when to come back: random 429s without Retry-After read
// to a client as a sustained quota breach, and this mix is about faults.
func FaultMix(method string, rate float64) []Fault {
	if rate <= 0 {
		return nil
	}
	kinds := []struct {
		share float64
		f     Fault
	}{
		{0.30, Fault{Status: http.StatusServiceUnavailable}},
		{0.15, Fault{Status: http.StatusInternalServerError}},
		{0.15, Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second}},
		{0.20, Fault{Reset: true}},
		{0.20, Fault{ResetAfterEffect: true}},
	}
	out := make([]Fault, 0, len(kinds))
	left := 1.0
	for _, k := range kinds {
		f := k.f
		f.Method = method
		f.Fraction = rate * k.share / left
		left -= rate * k.share
		out = append(out, f)
	}
	return out
}

// InjectFault adds a fault; see Fault for what it does and in which order
// faults are checked. It panics, as on a programming error in the test,
// on a Status that is neither 429 nor 5xx (0 is allowed with Reset and
// for a latency-only fault, and required with Reset), a Fraction outside
// [0, 1], a negative Latency, an unknown Method or a malformed space name.
func (e *Emulator) InjectFault(f Fault) {
	f, err := f.normalize()
	if err != nil {
		panic("emulator: InjectFault: " + err.Error())
	}
	e.mu.Lock()
	e.faults = append(e.faults, &fault{Fault: f, left: f.Times})
	e.mu.Unlock()
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	e.faults = nil
	e.mu.Unlock()
}

// Faults returns the active faults, in the order they are checked. A
// fault with Times has Times set to how many more times it applies.
func (e *Emulator) Faults() []Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Fault, len(e.faults))
	for i, f := range e.faults {
		out[i] = f.Fault
		out[i].Spaces = slices.Clone(f.Spaces)
		if f.Times > 0 {
			out[i].Times = f.left
		}
	}
	return out
}

// newSeed returns a random non-zero seed below 2^53, so that it survives
// a round trip through any JSON decoder.
func newSeed() int64 {
	for {
		var b [8]byte
		crand.Read(b[:]) // never fails (crypto/rand documents it)
		if s := int64(binary.LittleEndian.Uint64(b[:]) & (1<<53 - 1)); s != 0 {
			return s
		}
	}
}

// seedLocked makes seed (0: a random one) the source of fault fractions.
// Callers hold e.mu.
func (e *Emulator) seedLocked(seed int64) {
	if seed == 0 {
		seed = newSeed()
	}
	e.seed = seed
	e.rng = rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
}

// SetSeed restarts the random source that decides which requests a
// Fault with a Fraction applies to, as Config.Seed does at New; 0 picks a
// random seed.
func (e *Emulator) SetSeed(seed int64) {
	e.mu.Lock()
	e.seedLocked(seed)
	e.mu.Unlock()
}

// Seed returns the seed of the random source, the one picked at random
// if Config.Seed (or SetSeed) was 0, so that a failing run can be
// repeated.
func (e *Emulator) Seed() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seed
}

// faultPlan is what the active faults do to one request.
type faultPlan struct {
	latency time.Duration
	hit     *Fault // the failing fault that answers, if any
}

// planFaults decides, and uses up, the faults that apply to a request
// for method m addressing space ("" if none); see Fault for the order.
func (e *Emulator) planFaults(m *chatapi.Method, space string) faultPlan {
	var p faultPlan
	e.mu.Lock()
	defer e.mu.Unlock()
	used := false
	for _, f := range e.faults {
		if f.Method != "" && f.Method != m.ID {
			continue
		}
		if len(f.Spaces) > 0 && !slices.Contains(f.Spaces, space) {
			continue
		}
		if !f.latencyOnly() && p.hit != nil {
			continue
		}
		if f.Fraction > 0 && e.rng.Float64() >= f.Fraction {
			continue
		}
		if !f.latencyOnly() {
			cp := f.Fault
			p.hit = &cp
		}
		p.latency += f.Latency
		if f.Times > 0 {
			f.left--
			used = used || f.left <= 0
		}
	}
	if used {
		e.faults = slices.DeleteFunc(e.faults, func(f *fault) bool { return f.Times > 0 && f.left <= 0 })
	}
	if p.latency > 0 {
		e.counters.Delayed++
	}
	return p
}

// wait waits for d or until ctx ends, and returns ctx.Err() then.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxReadAhead caps how much of a request body readAhead buffers.
const maxReadAhead = 1 << 20

// readAhead reads the request body (up to the method's limit, at most
// maxReadAhead) into memory and puts it back as r.Body. A body read to
// its end lets net/http notice a client that hangs up, which ends the
// request's context; and a reset should come after the whole request
// has arrived, as at a real server.
func readAhead(r *http.Request, m *chatapi.Method) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	limit := min(m.MaxBody, maxReadAhead) + 1
	buf, _ := io.ReadAll(io.LimitReader(r.Body, limit))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
}

// msgCancelled is the answer logged for a request abandoned during an
// injected latency; the client is gone and never reads it.
const msgCancelled = "The operation was cancelled."

// dropConnection logs the request with status 0 and closes its
// connection without an answer: a TCP reset over HTTP/1.x, a stream
// reset over HTTP/2.
func (e *Emulator) dropConnection(x *exchange) {
	x.handled = true
	e.mu.Lock()
	e.counters.Resets++
	e.counters.InjectedFaults++
	e.mu.Unlock()
	x.logStatus(e, 0)
	conn, _, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		// HTTP/2, or a ResponseWriter of a wrapping handler that cannot
		// be hijacked: net/http resets the stream or closes the
		// connection without an answer.
		panic(http.ErrAbortHandler)
	}
	// Under TLS, close the TCP connection itself: closing the tls.Conn
	// would send a close_notify first, which reads as a clean EOF.
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0) // close with RST: ECONNRESET rather than EOF
	}
	conn.Close()
}

// faultError is the error a failing fault answers with, with its
// Retry-After header set on w.
func (e *Emulator) faultError(w http.ResponseWriter, m *chatapi.Method, f *Fault) *chatapi.Error {
	var err *chatapi.Error
	retryAfter := f.RetryAfter
	switch f.Status {
	case http.StatusTooManyRequests:
		err = e.quotaError(m, "project")
	case http.StatusServiceUnavailable:
		err = chatapi.NewError(f.Status, "The service is currently unavailable.")
	case http.StatusGatewayTimeout:
		err = chatapi.NewError(f.Status, "The request timed out. Please try again.")
	default:
		err = chatapi.NewError(f.Status, "Internal error encountered.")
	}
	if retryAfter > 0 {
		secs := int64(math.Ceil(retryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		err.Details = append(err.Details, chatapi.Detail{Type: chatapi.TypeRetryInfo, RetryDelay: strconv.FormatInt(secs, 10) + "s"})
	}
	return err
}
