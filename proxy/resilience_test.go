package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/shaping"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// clock is what the proxy tests inject as Config.Now and Config.After.
type clock interface {
	Now() time.Time
	After(time.Duration) <-chan time.Time
}

func withClock(c clock) func(*proxy.Config) {
	return func(cfg *proxy.Config) { cfg.Now, cfg.After = c.Now, c.After }
}

var twoSpaces = emulator.Config{
	Spaces:   []string{"spaces/AAAA", "spaces/BBBB"},
	Approved: []chatapi.Scope{chatapi.ScopeAppMessagesReadonly},
}

// answer is one call's outcome as the caller saw it.
type answer struct {
	status     int
	retryAfter string
	domain     string // of the ErrorInfo, for errors
	reason     string
	body       []byte
	err        error
}

// send makes one call to the broker as the caller with secret; a body
// goes as JSON.
func send(base, verb, path, secret, body string) answer {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(verb, base+path, rd)
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	a.body, a.err = io.ReadAll(resp.Body)
	if gerr, ok := chatapi.ParseError(a.body); ok && resp.StatusCode >= 400 {
		info, _ := gerr.Info()
		a.domain, a.reason = info.Domain, info.Reason
	}
	return a
}

func (a answer) String() string {
	if a.err != nil {
		return "error " + a.err.Error()
	}
	return fmt.Sprintf("%d %s/%s Retry-After %q", a.status, a.domain, a.reason, a.retryAfter)
}

// createMessage posts text to space as ops and returns the message name.
func createMessage(t *testing.T, e *env, space, text string) string {
	t.Helper()
	a := send(e.url, "POST", "/v1/"+space+"/messages", opsSecret, fmt.Sprintf(`{"text":%q}`, text))
	if a.status != 200 {
		t.Fatalf("create in %s: %v %s", space, a, a.body)
	}
	var m struct{ Name string }
	json.Unmarshal(a.body, &m)
	return m.Name
}

func upstreamCalls(e *env, method string) int { return e.emu.Counters().ByMethod[method] }

// 1,000 creates from 20 concurrent callers while a fifth of Chat's
// answers fail (503, 500, 429, resets before and after the message is
// stored): every create the broker acknowledged is stored exactly once,
// and no message is stored twice. The broker's clock runs 100× faster
// than real time, so Chat's one-second Retry-After and the holds it
// starts cost 10 ms each.
func TestChaosCreatesNothingLostNothingDoubled(t *testing.T) {
	creates, workers := 1000, 20
	if testing.Short() {
		creates = 200
	}
	const rate = 0.2
	clk := fakeclock.NewWarp(100)
	cfg := twoSpaces
	cfg.Seed = 20261127
	e := newEnvWith(t, cfg, testPolicy, withClock(clk))
	for _, f := range emulator.FaultMix("spaces.messages.create", rate) {
		e.emu.InjectFault(f)
	}
	spaces := []string{"spaces/AAAA", "spaces/BBBB"}
	answers := make([]answer, creates)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= creates {
					return
				}
				answers[i] = send(e.url, "POST", "/v1/"+spaces[i%2]+"/messages", opsSecret, fmt.Sprintf(`{"text":"chaos %d"}`, i))
			}
		})
	}
	wg.Wait()

	stored := map[string]int{}
	for _, s := range spaces {
		for _, m := range e.emu.Messages(s) {
			stored[m.Text]++
		}
	}
	acked, failed, duplicates, missing := 0, map[int]int{}, 0, 0
	for i, a := range answers {
		text := fmt.Sprintf("chaos %d", i)
		if stored[text] > 1 {
			duplicates++
			t.Errorf("%q is stored %d times", text, stored[text])
		}
		if a.err == nil && a.status == 200 {
			acked++
			if stored[text] == 0 {
				missing++
				t.Errorf("%q was acknowledged but is not stored", text)
			}
			continue
		}
		failed[a.status]++
	}
	st := e.proxy.Stats()
	c := e.emu.Counters()
	// The budget: 20% of the calls, plus the 100 retries saved up at the
	// start, plus 10 per second of the (warped) clock.
	bound := float64(creates)*(1+0.2) + 100 + 10*clk.Elapsed().Seconds()
	t.Logf("%d creates: %d acknowledged, failed by status %v, %d stored, %d duplicates, %d missing", creates, acked, failed, len(stored), duplicates, missing)
	t.Logf("upstream: %d attempts (emulator saw %d, %d injected faults, %d resets), %d retries, %d budget exhaustions, %d holds; budget bound %.0f over %s of broker time",
		st.Attempts, c.ByMethod["spaces.messages.create"], c.InjectedFaults, c.Resets, st.Retries, st.BudgetExhausted, st.Holds, bound, clk.Elapsed().Round(time.Millisecond))
	if float64(st.Attempts) > bound {
		t.Errorf("%d attempts, over the retry budget's bound %.0f", st.Attempts, bound)
	}
	if c.InjectedFaults == 0 || c.Resets == 0 {
		t.Errorf("the emulator injected %d faults, %d resets: the chaos did not happen", c.InjectedFaults, c.Resets)
	}
	if acked < creates*9/10 {
		t.Errorf("only %d of %d creates acknowledged", acked, creates)
	}
}

// Chat answers 401 for a token that expired early: the broker drops it,
// mints once, retries once, and the caller sees 200.
func TestUpstream401RetriedWithFreshToken(t *testing.T) {
	emuClock := &fakeclock.Skew{}
	cfg := twoSpaces
	cfg.Now, cfg.TokenLifetime = emuClock.Now, 10*time.Minute
	e := newEnvWith(t, cfg, testPolicy)
	createMessage(t, e, "spaces/AAAA", "before")
	if n := len(e.emu.Mints()); n != 1 {
		t.Fatalf("%d mints, want 1", n)
	}

	emuClock.Set(11 * time.Minute) // Google now sees the token as expired
	e.emu.ResetRequests()
	createMessage(t, e, "spaces/AAAA", "after")
	if n := len(e.emu.Mints()); n != 2 {
		t.Errorf("%d mints, want 2 (one re-mint)", n)
	}
	reqs := e.emu.Requests()
	if len(reqs) != 2 || reqs[0].Status != 401 || reqs[1].Status != 200 || reqs[0].Authorization == reqs[1].Authorization {
		t.Errorf("upstream saw %+v, want a 401 then a 200 with another token", reqs)
	}
	if st := e.proxy.Stats(); st.Reauths != 1 {
		t.Errorf("Stats.Reauths = %d, want 1", st.Reauths)
	}
	e.logs.WaitFor(t, `"attempts":2`)
}

// A read Chat answers 503 (or 429) with Retry-After: 2 is tried again,
// and only once the broker's clock has passed the two seconds.
func TestReadRetriedAfterRetryAfter(t *testing.T) {
	for _, status := range []int{503, 429} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			clk := fakeclock.New()
			e := newEnvWith(t, twoSpaces, testPolicy, withClock(clk))
			name := createMessage(t, e, "spaces/AAAA", "hello")
			e.emu.InjectFault(emulator.Fault{Method: "spaces.messages.get", Status: status, RetryAfter: 2 * time.Second, Times: 1})

			got := make(chan answer, 1)
			go func() { got <- send(e.url, "GET", "/v1/"+name, readerSecret, "") }()
			clk.WaitPending(t, 1) // the broker waits before the retry
			if n := upstreamCalls(e, "spaces.messages.get"); n != 1 {
				t.Fatalf("%d gets upstream, want 1 before the retry", n)
			}
			clk.Advance(2*time.Second - time.Millisecond)
			select {
			case a := <-got:
				t.Fatalf("answered %v before Retry-After passed", a)
			default:
			}
			if n := upstreamCalls(e, "spaces.messages.get"); n != 1 || clk.Pending() != 1 {
				t.Fatalf("%d gets upstream, %d timers pending 1 ms before Retry-After ends; want 1 and 1", n, clk.Pending())
			}
			clk.Advance(100*time.Millisecond + time.Millisecond) // past the jitter (up to Retries.Backoff)
			if a := <-got; a.status != 200 {
				t.Fatalf("get: %v %s, want 200", a, a.body)
			}
			if n := upstreamCalls(e, "spaces.messages.get"); n != 2 {
				t.Errorf("%d gets upstream, want 2", n)
			}
			e.logs.WaitFor(t, `"attempts":2`)
		})
	}
}

// What is retried and what is not, one fault at a time. The clock skips
// every back-off.
func TestRetriesByKind(t *testing.T) {
	e := newEnvWith(t, twoSpaces, testPolicy, withClock(fakeclock.NewInstant()))
	for i, tc := range []struct {
		desc         string
		method, verb string
		path         func(space, msg string) string
		body         string
		fault        emulator.Fault
		wantStatus   int
		wantUpstream int
		wantMessages int // in the space afterwards, the first included
		wantText     string
	}{
		{desc: "read after 503", method: "spaces.messages.get", verb: "GET", path: func(_, m string) string { return "/v1/" + m },
			fault: emulator.Fault{Status: 503}, wantStatus: 200, wantUpstream: 2, wantMessages: 1},
		{desc: "read after a reset", method: "spaces.messages.get", verb: "GET", path: func(_, m string) string { return "/v1/" + m },
			fault: emulator.Fault{Reset: true}, wantStatus: 200, wantUpstream: 2, wantMessages: 1},
		{desc: "create after 500", method: "spaces.messages.create", verb: "POST", path: func(sp, _ string) string { return "/v1/" + sp + "/messages" },
			body: `{"text":"second"}`, fault: emulator.Fault{Status: 500}, wantStatus: 200, wantUpstream: 2, wantMessages: 2},
		{desc: "create after a reset once stored", method: "spaces.messages.create", verb: "POST", path: func(sp, _ string) string { return "/v1/" + sp + "/messages" },
			body: `{"text":"second"}`, fault: emulator.Fault{ResetAfterEffect: true}, wantStatus: 200, wantUpstream: 2, wantMessages: 2},
		{desc: "create with the caller's requestId after a reset once stored", method: "spaces.messages.create", verb: "POST", path: func(sp, _ string) string { return "/v1/" + sp + "/messages?requestId=mine-1" },
			body: `{"text":"second"}`, fault: emulator.Fault{ResetAfterEffect: true}, wantStatus: 200, wantUpstream: 2, wantMessages: 2},
		{desc: "patch after 503 is not retried", method: "spaces.messages.patch", verb: "PATCH", path: func(_, m string) string { return "/v1/" + m + "?updateMask=text" },
			body: `{"text":"changed"}`, fault: emulator.Fault{Status: 503}, wantStatus: 503, wantUpstream: 1, wantMessages: 1, wantText: "first"},
		{desc: "patch after a reset is not retried", method: "spaces.messages.patch", verb: "PATCH", path: func(_, m string) string { return "/v1/" + m + "?updateMask=text" },
			body: `{"text":"changed"}`, fault: emulator.Fault{ResetAfterEffect: true}, wantStatus: 502, wantUpstream: 1, wantMessages: 1, wantText: "changed"},
		{desc: "delete after 503 is not retried", method: "spaces.messages.delete", verb: "DELETE", path: func(_, m string) string { return "/v1/" + m },
			fault: emulator.Fault{Status: 503}, wantStatus: 503, wantUpstream: 1, wantMessages: 1, wantText: "first"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			space := fmt.Sprintf("spaces/KIND%d", i)
			e.emu.AddSpace(space, true)
			e.emu.ClearFaults()
			name := createMessage(t, e, space, "first")
			f := tc.fault
			f.Method, f.Times = tc.method, 1
			e.emu.InjectFault(f)
			e.emu.ResetRequests()
			e.emu.ResetCounters()
			a := send(e.url, tc.verb, tc.path(space, name), opsSecret, tc.body)
			if a.status != tc.wantStatus {
				t.Errorf("status %v, want %d; body %s", a, tc.wantStatus, a.body)
			}
			if n := upstreamCalls(e, tc.method); n != tc.wantUpstream {
				t.Errorf("%d %s calls upstream, want %d", n, tc.method, tc.wantUpstream)
			}
			msgs := e.emu.Messages(space)
			if len(msgs) != tc.wantMessages {
				t.Errorf("%d messages stored, want %d", len(msgs), tc.wantMessages)
			}
			if tc.wantText != "" && len(msgs) > 0 && msgs[0].Text != tc.wantText {
				t.Errorf("message text %q, want %q", msgs[0].Text, tc.wantText)
			}
			// A create's attempts share one requestId: the caller's,
			// scoped to the caller, or one the broker added.
			if tc.method == "spaces.messages.create" {
				var ids []string
				for _, r := range e.emu.Requests() {
					ids = append(ids, r.RawQuery)
				}
				if len(ids) != 2 || ids[0] != ids[1] || !strings.Contains(ids[0], "requestId=") {
					t.Errorf("the attempts' queries are %q, want two with the same requestId", ids)
				}
				if strings.Contains(tc.path(space, ""), "requestId=mine-1") && strings.Contains(ids[0], "requestId=mine-1") {
					t.Errorf("the caller's requestId went to Chat as it came, not scoped to the caller: %q", ids[0])
				}
			}
		})
	}
}

// Under a total outage (every read answered 503) the retries stay within
// the budget: 20% of the calls plus the 100 saved up, as no time passes
// on this clock. Callers get Chat's 503.
func TestRetryBudgetUnderOutage(t *testing.T) {
	const calls, workers = 300, 10
	e := newEnvWith(t, twoSpaces, testPolicy, withClock(fakeclock.NewInstant()))
	e.emu.InjectFault(emulator.Fault{Method: "spaces.messages.get", Status: 503})
	var wg sync.WaitGroup
	var next atomic.Int64
	bad := make(chan answer, calls)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= calls {
				if a := send(e.url, "GET", "/v1/spaces/AAAA/messages/M1", readerSecret, ""); a.status != 503 || a.domain == chatapi.DomainBroker {
					bad <- a
				}
			}
		})
	}
	wg.Wait()
	close(bad)
	for a := range bad {
		t.Errorf("a caller got %v, want Chat's 503", a)
	}
	st := e.proxy.Stats()
	upstream := upstreamCalls(e, "spaces.messages.get")
	bound := calls*(1+0.2) + 100
	t.Logf("%d calls: %d attempts (emulator saw %d), %d retries, %d budget exhaustions; bound %.0f", calls, st.Attempts, upstream, st.Retries, st.BudgetExhausted, bound)
	if float64(st.Attempts) > bound || float64(upstream) > bound {
		t.Errorf("%d attempts (%d upstream), over the bound %.0f", st.Attempts, upstream, bound)
	}
	if st.Retries < calls*0.2 || st.BudgetExhausted == 0 {
		t.Errorf("%d retries, %d exhaustions: want the budget used up", st.Retries, st.BudgetExhausted)
	}
}

// Chat answers 429 with Retry-After: 2 for spaces/AAAA. For two seconds
// no call to AAAA reaches Chat: those whose deadline ends first are
// answered 429 at once, the others wait and go when the hold ends. Calls
// to spaces/BBBB flow throughout.
func TestSpaceHold(t *testing.T) {
	clk := fakeclock.New()
	e := newEnvWith(t, twoSpaces, testPolicy, withClock(clk), func(c *proxy.Config) {
		c.Retries.MaxAttempts = 1 // the hold alone, without the broker's own retry
		c.Deadline = time.Second
	})
	inA := createMessage(t, e, "spaces/AAAA", "a")
	inB := createMessage(t, e, "spaces/BBBB", "b")
	e.emu.InjectFault(emulator.Fault{Method: "spaces.messages.get", Status: 429, RetryAfter: 2 * time.Second, Times: 1, Spaces: []string{"spaces/AAAA"}})

	if a := send(e.url, "GET", "/v1/"+inA, readerSecret, ""); a.status != 429 || a.domain != chatapi.DomainGoogle || a.retryAfter != "2" {
		t.Fatalf("first get: %v, want Chat's 429 with Retry-After 2", a)
	}
	// The hold outlasts the one-second deadline: 429 at once, from the broker.
	if a := send(e.url, "GET", "/v1/"+inA, readerSecret, ""); a.status != 429 || a.reason != "SPACE_RATE_LIMITED" || a.retryAfter != "2" {
		t.Errorf("get during the hold: %v, want the broker's 429 SPACE_RATE_LIMITED with Retry-After 2", a)
	}
	if a := send(e.url, "GET", "/v1/"+inB, readerSecret, ""); a.status != 200 {
		t.Errorf("get in spaces/BBBB during the hold: %v, want 200", a)
	}
	if n := upstreamCalls(e, "spaces.messages.get"); n != 2 {
		t.Fatalf("%d gets upstream, want 2 (the 429 and BBBB's)", n)
	}

	// Half a second left: callers now wait in line.
	clk.Advance(1500 * time.Millisecond)
	const waiters = 3
	got := make(chan answer, waiters)
	for i := range waiters {
		go func() { got <- send(e.url, "GET", "/v1/"+inA, readerSecret, "") }()
		// Each waits on its deadline, and the first also on the hold.
		clk.WaitPending(t, i+2)
	}
	if st := e.proxy.Stats(); st.Waiting != waiters {
		t.Errorf("Stats.Waiting = %d, want %d", st.Waiting, waiters)
	}
	if n := upstreamCalls(e, "spaces.messages.get"); n != 2 {
		t.Fatalf("%d gets upstream during the hold, want still 2", n)
	}
	clk.Advance(500 * time.Millisecond)
	for range waiters {
		if a := <-got; a.status != 200 {
			t.Errorf("a waiting get: %v, want 200 once the hold ended", a)
		}
	}
	if a := send(e.url, "GET", "/v1/"+inA, readerSecret, ""); a.status != 200 {
		t.Errorf("get after the hold: %v, want 200", a)
	}
	if n := upstreamCalls(e, "spaces.messages.get"); n != 2+waiters+1 {
		t.Errorf("%d gets upstream, want %d", n, 2+waiters+1)
	}
}

// burst sends n calls at once and counts the answers by status and
// reason ("200", "404", "429 RATE_LIMITED", …).
func burst(t *testing.T, n int, call func() answer) map[string]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			a := call()
			key := strconv.Itoa(a.status)
			if a.reason != "" && a.domain == chatapi.DomainBroker {
				key += " " + a.reason
				if ra, err := strconv.Atoi(a.retryAfter); err != nil || ra < 1 {
					t.Errorf("%v: want a Retry-After of at least 1", a)
				}
			}
			if a.err != nil {
				key = "error"
			}
			mu.Lock()
			counts[key]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return counts
}

var limitedPolicy = policyOf(
	callerEntry("limited", limitedSecret, "[spaces.messages.get, spaces.messages.create]", `["*"]`, "[chat.bot]",
		"limits: {perMinute: 60, burst: 10}"),
	opsCaller,
)

const limitedSecret = "limited-secret-0123456789abcdef0"

// Limits hold under concurrency, counted not timed: with the clock
// stopped, 100 calls at once against a bucket of 60 a minute in bursts
// of 10 let exactly 10 through; the rest are answered 429 with
// Retry-After before reaching Chat.
func TestLimitsUnderConcurrency(t *testing.T) {
	getM1 := func(secret string) func(string) answer {
		return func(base string) answer { return send(base, "GET", "/v1/spaces/AAAA/messages/M1", secret, "") }
	}
	create := func(base string) answer {
		return send(base, "POST", "/v1/spaces/AAAA/messages", opsSecret, `{"text":"x"}`)
	}
	sixtyTen := shaping.Rate{Events: 60, Per: time.Minute, Burst: 10}
	shared := newEnvWith(t, twoSpaces, limitedPolicy)
	for _, tc := range []struct {
		desc   string
		shape  shaping.Config
		method string
		call   func(base string) answer
		want   map[string]int
	}{
		{"per caller (policy limits)", shaping.Config{}, "spaces.messages.get", getM1(limitedSecret),
			map[string]int{"404": 10, "429 RATE_LIMITED": 90}},
		{"per space, writes", shaping.Config{SpaceWrites: sixtyTen}, "spaces.messages.create", create,
			map[string]int{"200": 10, "429 SPACE_RATE_LIMITED": 90}},
		{"per space, reads", shaping.Config{SpaceReads: sixtyTen}, "spaces.messages.get", getM1(opsSecret),
			map[string]int{"404": 10, "429 SPACE_RATE_LIMITED": 90}},
		{"per project", shaping.Config{Project: map[chatapi.QuotaClass]shaping.Rate{chatapi.QuotaMessageWrites: sixtyTen}}, "spaces.messages.create", create,
			map[string]int{"200": 10, "429 RATE_LIMITED": 90}},
		{"a limit on another class", shaping.Config{Project: map[chatapi.QuotaClass]shaping.Rate{chatapi.QuotaMessageReads: sixtyTen}}, "spaces.messages.create", create,
			map[string]int{"200": 100}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := shared.withProxy(t, withClock(fakeclock.New()), func(c *proxy.Config) {
				c.Shaping = tc.shape
				c.Shaping.Wait = 500 * time.Millisecond // below the 1 s a token takes
			})
			e.emu.ResetCounters()
			got := burst(t, 100, func() answer { return tc.call(e.url) })
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("answers %v, want %v", got, tc.want)
			}
			var forwarded int
			for k, n := range tc.want {
				if !strings.HasPrefix(k, "429") {
					forwarded += n
				}
			}
			if n := upstreamCalls(e, tc.method); n != forwarded {
				t.Errorf("%d calls reached Chat, want %d", n, forwarded)
			}
		})
	}
}

// A call over its bucket waits for a token when one comes within
// Shaping.Wait: with 2 s allowed, the 11th and 12th of 100 calls wait
// for the clock (1 s and 2 s), the other 88 are refused.
func TestLimitWaitsForAToken(t *testing.T) {
	clk := fakeclock.New()
	e := newEnvWith(t, twoSpaces, limitedPolicy, withClock(clk), func(c *proxy.Config) {
		c.Shaping.Wait = 2 * time.Second
	})
	results := make(chan answer, 100)
	for range 100 {
		go func() { results <- send(e.url, "GET", "/v1/spaces/AAAA/messages/M1", limitedSecret, "") }()
	}
	counts := map[string]int{}
	for range 98 {
		a := <-results
		counts[strconv.Itoa(a.status)+" "+a.reason]++
	}
	if counts["404 "] != 10 || counts["429 RATE_LIMITED"] != 88 {
		t.Fatalf("answers before the clock moved: %v, want 10 forwarded and 88 refused", counts)
	}
	clk.WaitPending(t, 2)
	clk.Advance(2 * time.Second)
	for range 2 {
		if a := <-results; a.status != 404 {
			t.Errorf("a waiting call: %v, want forwarded (404)", a)
		}
	}
	if n := upstreamCalls(e, "spaces.messages.get"); n != 12 {
		t.Errorf("%d calls reached Chat, want 12", n)
	}
}

// Past MaxInFlight calls to Chat and MaxWaiting calls queued for a slot,
// the next call is answered 503 OVERLOADED at once.
func TestBackPressure(t *testing.T) {
	clk := fakeclock.New()
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	arrived := make(chan struct{}, 10)
	base := newStreamProxyWith(t, testPolicy, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "{}")
	}), withClock(clk), func(c *proxy.Config) {
		c.MaxInFlight, c.MaxWaiting = 2, 2
	})
	got := make(chan answer, 4)
	for range 4 {
		go func() { got <- send(base, "GET", "/v1/spaces/AAAA/messages/M1", notifierSecret, "") }()
	}
	<-arrived
	<-arrived
	clk.WaitPending(t, 2) // two calls wait for a slot
	a := send(base, "GET", "/v1/spaces/AAAA/messages/M1", notifierSecret, "")
	if a.status != 503 || a.reason != "OVERLOADED" || a.retryAfter == "" {
		t.Errorf("fifth call: %v, want 503 OVERLOADED with Retry-After", a)
	}
	unblock()
	for range 4 {
		if a := <-got; a.status != 200 {
			t.Errorf("a queued call: %v, want 200", a)
		}
	}
}

// A call queued behind a hold does not keep the queue waiting while it
// waits for an in-flight slot: the slot may belong to a retry queued
// behind it. With one slot, a read that got 429 (and keeps its slot for
// its retry) and a read queued behind the hold both finish.
func TestHoldQueueDoesNotWaitOnSlots(t *testing.T) {
	clk := fakeclock.New()
	e := newEnvWith(t, twoSpaces, testPolicy, withClock(clk), func(c *proxy.Config) { c.MaxInFlight = 1 })
	name := createMessage(t, e, "spaces/AAAA", "a")
	e.emu.InjectFault(emulator.Fault{Method: "spaces.messages.get", Status: 429, RetryAfter: 2 * time.Second, Times: 1})

	got := make(chan answer, 2)
	go func() { got <- send(e.url, "GET", "/v1/"+name, readerSecret, "") }()
	clk.WaitPending(t, 1) // the first read's back-off, its slot kept
	go func() { got <- send(e.url, "GET", "/v1/"+name, readerSecret, "") }()
	clk.WaitPending(t, 3) // the second read queued: its deadline and the hold's end
	clk.Advance(2 * time.Second)
	clk.Advance(101 * time.Millisecond) // past the first read's jitter
	for range 2 {
		select {
		case a := <-got:
			if a.status != 200 {
				t.Errorf("a read: %v, want 200", a)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the reads never finished: the hold's queue waits on a slot")
		}
	}
}

// Per-caller buckets follow the policy: a reload that changes a
// caller's limits gives it a new bucket at once; one that leaves them
// alone keeps what the caller has spent.
func TestCallerLimitFollowsReload(t *testing.T) {
	clk := fakeclock.New()
	store := policy.NewStore(mustParse(t, limitedPolicy))
	e := newEnvWith(t, twoSpaces, limitedPolicy, withClock(clk), func(c *proxy.Config) {
		c.Policy = store
		c.Shaping.Wait = -1 // refuse at once
	})
	get := func() int { return send(e.url, "GET", "/v1/spaces/AAAA/messages/M1", limitedSecret, "").status }
	spend := func() (forwarded int) {
		for get() == 404 {
			forwarded++
		}
		return forwarded
	}
	if n := spend(); n != 10 {
		t.Fatalf("%d calls before the first 429, want the burst of 10", n)
	}
	// The same limits, reloaded (a change elsewhere in the file): still spent.
	store.Swap(mustParse(t, limitedPolicy+"\n# reloaded\n"))
	if s := get(); s != 429 {
		t.Errorf("after a reload with the same limits: %d, want 429", s)
	}
	// New limits: a new bucket.
	store.Swap(mustParse(t, strings.Replace(limitedPolicy, "{perMinute: 60, burst: 10}", "{perMinute: 60, burst: 3}", 1)))
	if n := spend(); n != 3 {
		t.Errorf("%d calls after new limits, want their burst of 3", n)
	}
}

func mustParse(t *testing.T, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A call that could not even connect sent nothing, so it is retried
// whatever its method, a patch included; when Chat stays unreachable
// the caller gets 502 after MaxAttempts.
func TestConnectFailureRetriedForAnyMethod(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down, _ := url.Parse("http://" + l.Addr().String())
	l.Close() // nothing listens there now
	px, err := proxy.New(proxy.Config{Upstream: down, Policy: policy.NewStore(mustParse(t, testPolicy)), Tokens: &fakeTokens{},
		Now: fakeclock.NewInstant().Now, After: fakeclock.NewInstant().After})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(px)
	defer srv.Close()
	a := send(srv.URL, "PATCH", "/v1/spaces/AAAA/messages/M1?updateMask=text", opsSecret, `{"text":"x"}`)
	if a.status != 502 || a.reason != "UPSTREAM_UNAVAILABLE" {
		t.Errorf("patch to a Chat that is down: %v, want 502 UPSTREAM_UNAVAILABLE", a)
	}
	if st := px.Stats(); st.Attempts != 5 || st.Retries != 4 {
		t.Errorf("%d attempts, %d retries; want 5 and 4", st.Attempts, st.Retries)
	}
}
