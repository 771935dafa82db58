package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/chat-broker/chat-broker/internal/retry"
)

// Retries is when and how the proxy tries a call again.
// A call is retried only when a second attempt cannot do the work twice:
//
//   - after a 401, once, with a freshly minted token: Chat ran nothing;
//   - after a 429, 500, 502, 503 or 504, a connection reset or an early
//     EOF, for reads (chatapi.Method.ReadOnly) and for writes Chat
//     deduplicates: spaces.messages.create and spaces.create carry a
//     requestId (the caller's, or one the broker adds) that every attempt
//     reuses;
//   - after a failure to connect (nothing was sent), for any method.
//
// Other writes (patch, update, delete, members.create, spaces.setup, …)
// are not retried after a response or a reset, and neither is
// media.upload, whose body streams and cannot be replayed.
type Retries struct {
	// MaxAttempts caps the attempts per call, the first included; 0 means
	// 5; 1 turns retries off (the 401 retry too).
	MaxAttempts int
	// Backoff is the wait before the first retry; each further retry
	// doubles it, up to MaxBackoff, jittered between half and all of it.
	// A Retry-After from Chat replaces it (plus up to Backoff of jitter).
	// 0 means 100 ms.
	Backoff time.Duration
	// MaxBackoff caps the doubling; 0 means 10 s.
	MaxBackoff time.Duration
	// BudgetRatio and BudgetFloor are the retry budget, as Finagle's
	// RetryBudget: every call forwarded deposits BudgetRatio of a retry
	// (0 means 0.2: at most 20% more attempts than calls), and
	// BudgetFloor retries per second are always allowed (0 means 10),
	// saved up for at most 10 s (a reserve of 100 retries at the
	// default), so a quiet broker can still retry. When the budget is
	// spent, a call gets the failure as Chat answered it. Negative means
	// none.
	BudgetRatio, BudgetFloor float64
}

// Defaults of Retries and of the Config fields for shaping and back-pressure.
const (
	defaultMaxAttempts = 5
	defaultBackoff     = 100 * time.Millisecond
	defaultMaxBackoff  = 10 * time.Second
	defaultBudgetRatio = 0.2
	defaultBudgetFloor = 10
	defaultDeadline    = 30 * time.Second
	// maxDrain is how much of a failed attempt's body is read (so its
	// connection can be reused) before it is closed.
	maxDrain = 64 << 10
)

// send makes the attempts of one call and returns the last one's
// response, which forward streams to the caller.
func (p *Proxy) send(ctx context.Context, req *http.Request, c *call) (*http.Response, error) {
	p.budget.Deposit(p.now())
	p.stats.calls.Add(1)
	out := req
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			out = c.replay(req)
		}
		c.attempts = attempt
		p.stats.attempts.Add(1)
		resp, err := p.roundTrip(ctx, out, c)
		p.metrics.attempt(c.method, resp, err)
		if err == nil && resp.StatusCode == http.StatusTooManyRequests {
			ra, _ := retry.After(resp.Header, p.now())
			p.shaper.Hold(c.space, ra)
		}
		wait, why, ok := p.retry(ctx, c, attempt, resp, err)
		if !ok {
			return resp, err
		}
		if why == "401" {
			// Drop the refused token and mint once; if no token can be
			// had, the caller gets Chat's 401.
			if inv, ok := p.tokens.(invalidator); ok {
				inv.InvalidateToken(c.token)
			}
			tok, terr := p.tokens.Token(ctx, c.subject, c.scopes)
			if terr != nil {
				p.log.Warn("no fresh token after Chat answered 401", "caller", c.caller, "method", c.method, "err", terr)
				return resp, nil
			}
			c.token = tok
			c.reauthed = true
			p.stats.reauths.Add(1)
		}
		if resp != nil {
			discard(resp)
		}
		p.stats.retries.Add(1)
		p.metrics.retry(c.method, why)
		if wait > 0 {
			select {
			case <-p.after(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		// Another call may have had a 429 for this space meanwhile: wait
		// for that hold too, in its queue.
		pass, herr := p.shaper.WaitHold(ctx, c.space, c.deadline, false)
		if herr != nil {
			return nil, herr
		}
		pass()
	}
}

// retry decides whether attempt may be followed by another, how long to
// wait first, and why (a label for the metric).
func (p *Proxy) retry(ctx context.Context, c *call, attempt int, resp *http.Response, err error) (wait time.Duration, why string, ok bool) {
	if ctx.Err() != nil || attempt >= p.retries.MaxAttempts || !c.replayable {
		return 0, "", false
	}
	now := p.now()
	switch {
	case err != nil && errors.As(err, new(*badStatusError)):
		// The upstream is broken, not busy.
		return 0, "", false
	case err != nil && isDialError(err):
		why = "connect"
	case err != nil:
		// A reset, an early EOF, or no response head in time (the
		// upstream may be working on the call): only a call Chat cannot
		// do twice goes again.
		if !c.idempotent {
			return 0, "", false
		}
		why = "reset"
	case resp.StatusCode == http.StatusUnauthorized:
		if c.reauthed {
			return 0, "", false
		}
		why = "401"
	case resp.StatusCode == http.StatusTooManyRequests:
		if !c.idempotent {
			return 0, "", false
		}
		why = "429"
	case resp.StatusCode == http.StatusInternalServerError, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		if !c.idempotent {
			return 0, "", false
		}
		why = "5xx"
	default:
		return 0, "", false
	}
	if why != "401" {
		wait = retry.Jitter(retry.Backoff(p.retries.Backoff, p.retries.MaxBackoff, attempt))
		if resp != nil {
			if ra, ok := retry.After(resp.Header, now); ok {
				wait = ra + retry.UpTo(p.retries.Backoff)
			}
		}
		wait = max(wait, p.shaper.HoldRemaining(c.space))
	}
	// No attempt starts after the call's deadline, the 401 one included.
	if now.Add(wait).After(c.deadline) {
		return 0, "", false
	}
	if !p.budget.Withdraw(now) {
		p.stats.exhausted.Add(1)
		p.metrics.budgetExhausted(c.method)
		return 0, "", false
	}
	return wait, why, true
}

// replay is the request of a further attempt: the first one's, with the
// current token (roundTrip gives it the buffered body again).
func (c *call) replay(req *http.Request) *http.Request {
	out := *req
	out.Header = req.Header.Clone()
	c.token.SetAuthHeader(&out)
	return &out
}

func (c *call) getBody() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c.body)), nil
}

// discard reads a little of a response that will not reach the caller,
// so its connection can be reused, and closes it.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
}

// isTimeout reports whether err is a wait that ran out: for a response
// head, or a connection's reads or writes.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError reports whether err happened before the request was sent:
// the connection could not be made.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// newRequestID returns a random UUID (version 4), the form Chat
// recommends for requestId.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails on supported platforms
	return formatUUID(b, 4)
}

// scopedRequestID is the requestId sent for one that caller chose: a
// UUID (version 8, RFC 9562) from the SHA-256 of both. The same caller
// sending the same id (a retry of its own) gets the same one, so Chat
// still deduplicates; two callers sending the same id get two, so
// neither sees what the other created. A caller cannot choose the id
// Chat sees, so it cannot aim at another caller's.
func scopedRequestID(caller, id string) string {
	h := sha256.New()
	h.Write([]byte("chat-broker requestId v1\x00"))
	h.Write([]byte(caller))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var b [16]byte
	copy(b[:], h.Sum(nil))
	return formatUUID(b, 8)
}

func formatUUID(b [16]byte, version byte) string {
	b[6] = b[6]&0x0f | version<<4
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// deadlineFor is the latest a call may still wait or start an attempt:
// Config.Deadline from now, never past the caller's own context. A
// context's deadline is on the wall clock, so its remainder is measured
// there and carried onto the injected clock.
func (p *Proxy) deadlineFor(ctx context.Context) time.Time {
	now := p.now()
	d := now.Add(p.deadline)
	if dl, ok := ctx.Deadline(); ok {
		if cd := now.Add(time.Until(dl)); cd.Before(d) {
			d = cd
		}
	}
	return d
}
