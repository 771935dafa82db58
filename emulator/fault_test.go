package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/chat/v1"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// send sends a raw Chat request and returns the answer, or the error of a
// connection that gave none.
func (v *env) send(ctx context.Context, verb, path, token, body string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, verb, v.srv.URL+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return v.exchange(req)
}

// fractionRun sends n calls through a 30% fault on an emulator seeded
// with seed and returns which failed.
func fractionRun(t *testing.T, seed int64, n int) []bool {
	t.Helper()
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Seed: seed})
	if got := v.emu.Seed(); got != seed {
		t.Fatalf("Seed() = %d, want %d", got, seed)
	}
	tok := v.token(t, "", chatapi.ScopeBot)
	v.emu.InjectFault(emulator.Fault{Method: "spaces.get", Status: 503, Fraction: 0.3})
	failed := make([]bool, n)
	for i := range failed {
		status, _, body := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", "")
		switch status {
		case 503:
			failed[i] = true
		case 200:
		default:
			t.Fatalf("call %d: %d %s", i, status, body)
		}
	}
	if c := v.emu.Counters(); c.InjectedFaults != count(failed) || c.ByStatus[503] != count(failed) {
		t.Errorf("counters %+v, want %d injected", c, count(failed))
	}
	return failed
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// FaultMix fails the share of calls it is asked for, split as its
// documentation says, and every 429 in it says when to come back.
func TestFaultMix(t *testing.T) {
	if got := emulator.FaultMix("spaces.messages.create", 0); got != nil {
		t.Errorf("rate 0: %d faults, want none", len(got))
	}
	for _, rate := range []float64{0.05, 0.2, 0.5} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			pass := 1.0 // the chance a call meets no fault
			for _, f := range emulator.FaultMix("spaces.messages.create", rate) {
				if f.Method != "spaces.messages.create" {
					t.Errorf("fault %+v: method %q", f, f.Method)
				}
				share := pass * f.Fraction / rate
				want := map[bool]float64{true: 0.20, false: 0.15}[f.Reset || f.ResetAfterEffect]
				if f.Status == http.StatusServiceUnavailable {
					want = 0.30
				}
				if math.Abs(share-want) > 1e-9 {
					t.Errorf("fault %+v: %.4f of the failures, want %.2f", f, share, want)
				}
				if f.Status == http.StatusTooManyRequests && f.RetryAfter <= 0 {
					t.Errorf("429 without Retry-After: %+v", f)
				}
				pass *= 1 - f.Fraction
			}
			if math.Abs((1-pass)-rate) > 1e-9 {
				t.Errorf("%.4f of calls fail, want %.2f", 1-pass, rate)
			}
		})
	}
}

func TestFaultFractionSeeded(t *testing.T) {
	const n, f = 1000, 0.3
	first := fractionRun(t, 42, n)
	got := count(first)
	// The binomial's standard deviation is about 14.5; the seed is fixed,
	// so this either always holds or never does.
	if want := int(f * n); got < want-60 || got > want+60 {
		t.Errorf("%d of %d calls failed, want about %d", got, n, want)
	}
	if second := fractionRun(t, 42, n); !slices.Equal(first, second) {
		t.Errorf("two runs with seed 42 failed different calls (%d and %d failures)", got, count(second))
	}
	if other := fractionRun(t, 43, n); slices.Equal(first, other) {
		t.Errorf("seeds 42 and 43 failed the same calls")
	}
}

func TestFaultFractionTimesAndSeed(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	if v.emu.Seed() == 0 {
		t.Errorf("Seed() = 0 with a random seed; want the seed picked")
	}
	tok := v.token(t, "", chatapi.ScopeBot)
	// Times counts injected failures, not matching calls.
	v.emu.InjectFault(emulator.Fault{Method: "spaces.get", Status: 500, Fraction: 0.5, Times: 5})
	fails, calls := 0, 0
	for len(v.emu.Faults()) > 0 {
		if calls++; calls > 1000 {
			t.Fatalf("the fault is still active after %d calls, %d failures", calls, fails)
		}
		if status, _, _ := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", ""); status == 500 {
			fails++
		}
	}
	if fails != 5 {
		t.Errorf("%d injected failures, want 5", fails)
	}

	// SetSeed replays the same sequence.
	pattern := func() []bool {
		v.emu.SetSeed(7)
		v.emu.InjectFault(emulator.Fault{Method: "spaces.get", Status: 503, Fraction: 0.5})
		defer v.emu.ClearFaults()
		out := make([]bool, 50)
		for i := range out {
			status, _, _ := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", "")
			out[i] = status == 503
		}
		return out
	}
	if a, b := pattern(), pattern(); !slices.Equal(a, b) {
		t.Errorf("SetSeed(7) twice gave different sequences:\n%v\n%v", a, b)
	}
	if v.emu.Seed() != 7 {
		t.Errorf("Seed() = %d after SetSeed(7)", v.emu.Seed())
	}
}

func TestFaultReset(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot)
	ctx := context.Background()
	create := func(requestID string) (int, []byte, error) {
		status, _, body, err := v.send(ctx, "POST", "/v1/spaces/AAAA/messages?requestId="+requestID, tok, `{"text":"hello"}`)
		return status, body, err
	}

	// Before effect: no answer, no message; the retry creates it.
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Reset: true, Times: 1})
	if status, body, err := create("before"); err == nil {
		t.Fatalf("reset before effect: got %d %s, want a connection error", status, body)
	} else if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("reset before effect: %v, want ECONNRESET or EOF", err)
	}
	if n := len(v.emu.Messages(space)); n != 0 {
		t.Errorf("%d messages after a reset before effect, want 0", n)
	}
	if reqs := v.emu.Requests(); len(reqs) != 1 || reqs[0].Status != 0 || reqs[0].MethodID != "spaces.messages.create" {
		t.Errorf("request log = %+v, want the reset create with status 0", reqs)
	}
	if status, body, err := create("before"); err != nil || status != 200 {
		t.Fatalf("retry: %d %s %v", status, body, err)
	}
	if n := len(v.emu.Messages(space)); n != 1 {
		t.Errorf("%d messages after the retry, want 1", n)
	}

	// After effect: no answer, but the message exists; the retry with the
	// same requestId gets it and creates nothing.
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Reset: true, ResetAfterEffect: true, Times: 1})
	if status, body, err := create("after"); err == nil {
		t.Fatalf("reset after effect: got %d %s, want a connection error", status, body)
	}
	var created []emulator.Message
	for _, m := range v.emu.Messages(space) {
		if m.RequestID == "after" {
			created = append(created, m)
		}
	}
	if len(created) != 1 {
		t.Fatalf("messages with requestId after = %+v, want exactly one", created)
	}
	status, body, err := create("after")
	if err != nil || status != 200 {
		t.Fatalf("retry after effect: %d %s %v", status, body, err)
	}
	var got struct{ Name string }
	if err := json.Unmarshal(body, &got); err != nil || got.Name != created[0].Name {
		t.Errorf("retry answered %s, want the message %s", body, created[0].Name)
	}
	if n := len(v.emu.Messages(space)); n != 2 {
		t.Errorf("%d messages in all, want 2", n)
	}

	// The official client sees an error, not a response; ResetAfterEffect
	// alone implies Reset.
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", ResetAfterEffect: true, Times: 1})
	_, err = v.chat(t, chatapi.ScopeBot).Spaces.Messages.Create(space, &chat.Message{Text: "x"}).RequestId("client").Do()
	if err == nil {
		t.Errorf("official client: succeeded through a reset")
	}
	c := v.emu.Counters()
	if c.Resets != 3 || c.InjectedFaults != 3 || c.ByStatus[0] != 3 {
		t.Errorf("counters = %+v, want 3 resets", c)
	}
}

func TestResetAfterEffectSpacesCreate(t *testing.T) {
	v := newEnv(t, emulator.Config{Approved: []chatapi.Scope{chatapi.ScopeAppSpacesCreate}})
	tok := v.token(t, "", chatapi.ScopeAppSpacesCreate)
	body := `{"displayName":"Ops","spaceType":"SPACE","customer":"customers/my_customer"}`
	v.emu.InjectFault(emulator.Fault{Method: "spaces.create", ResetAfterEffect: true, Times: 1})
	if status, _, b, err := v.send(context.Background(), "POST", "/v1/spaces?requestId=s1", tok, body); err == nil {
		t.Fatalf("reset: got %d %s", status, b)
	}
	spaces := v.emu.Spaces()
	if len(spaces) != 1 {
		t.Fatalf("spaces = %v, want the one created before the reset", spaces)
	}
	status, _, b, err := v.send(context.Background(), "POST", "/v1/spaces?requestId=s1", tok, body)
	if err != nil || status != 200 || !strings.Contains(string(b), `"name":"`+spaces[0]+`"`) {
		t.Errorf("retry: %d %s %v, want %s", status, b, err, spaces[0])
	}
	if n := len(v.emu.Spaces()); n != 1 {
		t.Errorf("%d spaces after the retry, want 1", n)
	}
}

func TestConcurrentCreatesOneRequestID(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Approved: []chatapi.Scope{chatapi.ScopeAppSpacesCreate}})
	tok := v.token(t, "", chatapi.ScopeBot, chatapi.ScopeAppSpacesCreate)
	const workers = 50
	run := func(path, body string) []string {
		start := make(chan struct{})
		names := make([]string, workers)
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				<-start
				status, _, b, err := v.send(context.Background(), "POST", path, tok, body)
				if err != nil || status != 200 {
					t.Errorf("worker %d: %d %s %v", i, status, b, err)
					return
				}
				var got struct{ Name string }
				json.Unmarshal(b, &got)
				names[i] = got.Name
			})
		}
		close(start)
		wg.Wait()
		return names
	}

	names := run("/v1/spaces/AAAA/messages?requestId=same", `{"text":"once"}`)
	if msgs := v.emu.Messages(space); len(msgs) != 1 {
		t.Fatalf("%d messages from %d creates with one requestId, want 1", len(msgs), workers)
	} else if slices.ContainsFunc(names, func(n string) bool { return n != msgs[0].Name }) {
		t.Errorf("answers %v, want all %s", names, msgs[0].Name)
	}

	before := len(v.emu.Spaces())
	names = run("/v1/spaces?requestId=same", `{"displayName":"Once","spaceType":"SPACE","customer":"customers/my_customer"}`)
	if after := len(v.emu.Spaces()); after != before+1 {
		t.Errorf("%d spaces created by %d creates with one requestId, want 1", after-before, workers)
	}
	if uniq := slices.Compact(slices.Sorted(slices.Values(names))); len(uniq) != 1 {
		t.Errorf("answers name different spaces: %v", uniq)
	}
}

func TestFaultSpaces(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space, "spaces/BBBB"}})
	tok := v.token(t, "", chatapi.ScopeBot)
	v.emu.InjectFault(emulator.Fault{Status: 429, Spaces: []string{"AAAA"}})
	if f := v.emu.Faults(); len(f) != 1 || !slices.Equal(f[0].Spaces, []string{space}) {
		t.Errorf("Faults() = %+v, want spaces [%s]", f, space)
	}
	for _, tc := range []struct {
		name, verb, path, body string
		want                   int
	}{
		{"create in the faulted space", "POST", "/v1/spaces/AAAA/messages", `{"text":"x"}`, 429},
		{"get the faulted space", "GET", "/v1/spaces/AAAA", "", 429},
		{"list the faulted space's members", "GET", "/v1/spaces/AAAA/members", "", 429},
		{"create in another space", "POST", "/v1/spaces/BBBB/messages", `{"text":"x"}`, 200},
		{"get another space", "GET", "/v1/spaces/BBBB", "", 200},
		{"list spaces, which addresses none", "GET", "/v1/spaces", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := ""
			if tc.body != "" {
				ct = "application/json"
			}
			if status, _, body := v.do(t, tc.verb, tc.path, tok, ct, tc.body); status != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.verb, tc.path, status, body, tc.want)
			}
		})
	}
}

// signals is a slog handler that reports log messages on channels.
type signals struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func newSignals(msgs ...string) *signals {
	s := &signals{ch: map[string]chan struct{}{}}
	for _, m := range msgs {
		s.ch[m] = make(chan struct{}, 100)
	}
	return s
}

func (s *signals) Enabled(context.Context, slog.Level) bool { return true }
func (s *signals) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *signals) WithGroup(string) slog.Handler            { return s }
func (s *signals) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.ch[r.Message]; ok {
		ch <- struct{}{}
	}
	return nil
}

func TestFaultLatency(t *testing.T) {
	sig := newSignals("emulator: injected latency", "emulator: request abandoned during injected latency")
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Logger: slog.New(sig)})
	tok := v.token(t, "", chatapi.ScopeBot)

	// A latency-only fault slows the call down and lets it succeed.
	const lat = 150 * time.Millisecond
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Latency: lat, Times: 1})
	start := time.Now()
	status, _, body, err := v.send(context.Background(), "POST", "/v1/spaces/AAAA/messages", tok, `{"text":"slow"}`)
	if took := time.Since(start); err != nil || status != 200 || took < lat {
		t.Errorf("slowed create: %d %s %v after %v, want 200 after at least %v", status, body, err, took, lat)
	}
	<-sig.ch["emulator: injected latency"]
	if n := len(v.emu.Messages(space)); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	if f := v.emu.Faults(); len(f) != 0 {
		t.Errorf("faults left: %+v", f)
	}

	// A client that gives up ends the request early: it takes no effect
	// and is logged as 499.
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Latency: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, _, err := v.send(ctx, "POST", "/v1/spaces/AAAA/messages", tok, `{"text":"never"}`)
		done <- err
	}()
	<-sig.ch["emulator: injected latency"] // the request is waiting
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v, want context.Canceled", err)
	}
	select {
	case <-sig.ch["emulator: request abandoned during injected latency"]:
	case <-time.After(10 * time.Second): // a hang guard against the hour, not a timing check
		t.Fatal("the emulator still waits after the client gave up")
	}
	if n := len(v.emu.Messages(space)); n != 1 {
		t.Errorf("%d messages, want 1: an abandoned create takes no effect", n)
	}
	reqs := v.emu.Requests()
	if last := reqs[len(reqs)-1]; last.Status != 499 {
		t.Errorf("abandoned request logged as %+v, want status 499", last)
	}
	if c := v.emu.Counters(); c.Delayed != 2 || c.InjectedFaults != 0 {
		t.Errorf("counters = %+v, want 2 delayed, none injected", c)
	}

	// Latency before a failure: the status comes after the wait.
	v.emu.ClearFaults()
	v.emu.InjectFault(emulator.Fault{Method: "spaces.get", Status: 503, Latency: lat, Times: 1})
	start = time.Now()
	if status, _, _ := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", ""); status != 503 || time.Since(start) < lat {
		t.Errorf("slow 503: %d after %v", status, time.Since(start))
	}
}

func TestFaultBodies(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot)

	// 429 without RetryAfter: Google's quota error body, and, as Chat's
	// quota errors usually come, no Retry-After and no RetryInfo.
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Status: 429, Times: 1})
	status, h, body := v.do(t, "POST", "/v1/spaces/AAAA/messages", tok, "application/json", `{"text":"x"}`)
	if status != 429 || h.Get("Retry-After") != "" {
		t.Errorf("429: %d Retry-After %q", status, h.Get("Retry-After"))
	}
	e, ok := chatapi.ParseError(body)
	if !ok || e.Code != 429 || e.Status != "RESOURCE_EXHAUSTED" ||
		!strings.HasPrefix(e.Message, "Quota exceeded for quota metric '") ||
		!strings.HasSuffix(e.Message, "' of service 'chat.googleapis.com' for consumer 'project_number:"+projectNumber(t, e)+"'.") {
		t.Fatalf("429 body: %s", body)
	}
	info, _ := e.Info()
	keys := slices.Sorted(maps.Keys(info.Metadata))
	if info.Reason != "RATE_LIMIT_EXCEEDED" || info.Domain != "googleapis.com" ||
		!slices.Equal(keys, []string{"consumer", "quota_limit", "quota_metric", "service"}) ||
		info.Metadata["service"] != "chat.googleapis.com" {
		t.Errorf("ErrorInfo = %+v", info)
	}
	var types []string
	for _, d := range e.Details {
		types = append(types, d.Type)
		switch d.Type {
		case chatapi.TypeHelp:
			if len(d.Links) == 0 || d.Links[0].URL == "" {
				t.Errorf("Help without links: %+v", d)
			}
		}
	}
	if want := []string{chatapi.TypeErrorInfo, chatapi.TypeHelp}; !slices.Equal(types, want) {
		t.Errorf("details %v, want %v", types, want)
	}

	// With RetryAfter set, the 429 carries it in both forms.
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 1})
	status, h, body = v.do(t, "POST", "/v1/spaces/AAAA/messages", tok, "application/json", `{"text":"x"}`)
	e, _ = chatapi.ParseError(body)
	if status != 429 || h.Get("Retry-After") != "2" || len(e.Details) != 3 || e.Details[2].Type != chatapi.TypeRetryInfo || e.Details[2].RetryDelay != "2s" {
		t.Errorf("429 with RetryAfter 1.5s: %d Retry-After %q, body %s; want Retry-After 2 and RetryInfo 2s", status, h.Get("Retry-After"), body)
	}

	// A 503 has Retry-After only when set.
	v.emu.InjectFault(emulator.Fault{Status: 503, Times: 1})
	if status, h, _ := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", ""); status != 503 || h.Get("Retry-After") != "" {
		t.Errorf("503: %d Retry-After %q, want none", status, h.Get("Retry-After"))
	}
	v.emu.InjectFault(emulator.Fault{Status: 503, RetryAfter: 3 * time.Second, Times: 1})
	if status, h, _ := v.do(t, "GET", "/v1/spaces/AAAA", tok, "", ""); status != 503 || h.Get("Retry-After") != "3" {
		t.Errorf("503 with RetryAfter: %d Retry-After %q, want 3", status, h.Get("Retry-After"))
	}
}

// projectNumber reads the project number from a quota error's consumer.
func projectNumber(t *testing.T, e *chatapi.Error) string {
	t.Helper()
	info, _ := e.Info()
	n, ok := strings.CutPrefix(info.Metadata["consumer"], "projects/")
	if !ok || n == "" {
		t.Fatalf("consumer = %q", info.Metadata["consumer"])
	}
	return n
}

func TestInjectFaultPanics(t *testing.T) {
	emu, err := emulator.New(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    emulator.Fault
	}{
		{"empty", emulator.Fault{}},
		{"status 400", emulator.Fault{Status: 400}},
		{"fraction above 1", emulator.Fault{Status: 503, Fraction: 1.5}},
		{"fraction negative", emulator.Fault{Status: 503, Fraction: -0.1}},
		{"status with reset", emulator.Fault{Status: 503, Reset: true}},
		{"latency negative", emulator.Fault{Latency: -time.Second}},
		{"unknown method", emulator.Fault{Status: 503, Method: "spaces.nope"}},
		{"space name with a slash", emulator.Fault{Status: 503, Spaces: []string{"spaces/a/b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("InjectFault(%+v) did not panic", tc.f)
				}
			}()
			emu.InjectFault(tc.f)
		})
	}
	// Valid without a status: a reset, and latency alone.
	emu.InjectFault(emulator.Fault{Reset: true})
	emu.InjectFault(emulator.Fault{Latency: time.Millisecond, Fraction: 1})
	if n := len(emu.Faults()); n != 2 {
		t.Errorf("%d faults, want 2", n)
	}
}

func TestSetTokenError(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	issued := v.token(t, "", chatapi.ScopeBot)

	v.emu.SetTokenError(400, "invalid_grant", "Invalid JWT Signature.")
	status, body := v.mintError(t, "", chatapi.ScopeBot)
	want := map[string]any{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
	if status != 400 || !reflect.DeepEqual(body, want) {
		t.Errorf("mint: %d %v, want 400 %v", status, body, want)
	}
	// A token issued before keeps working.
	if status, _, b := v.do(t, "GET", "/v1/spaces/AAAA", issued, "", ""); status != 200 {
		t.Errorf("earlier token: %d %s", status, b)
	}

	v.emu.SetTokenError(503, "", "Backend unavailable.")
	status, body = v.mintError(t, "", chatapi.ScopeBot)
	if want := map[string]any{"error": "temporarily_unavailable", "error_description": "Backend unavailable."}; status != 503 || !reflect.DeepEqual(body, want) {
		t.Errorf("outage: %d %v", status, body)
	}

	// SetTokenEndpointDown takes precedence, and still works alone.
	v.emu.SetTokenError(400, "invalid_grant", "Invalid JWT Signature.")
	v.emu.SetTokenEndpointDown(true)
	if status, body := v.mintError(t, "", chatapi.ScopeBot); status != 503 || body["error"] != "temporarily_unavailable" {
		t.Errorf("down and token error: %d %v, want the 503 of down", status, body)
	}
	v.emu.SetTokenEndpointDown(false)
	v.emu.SetTokenError(0, "", "")
	if _, err := v.tokenSource(t, "", chatapi.ScopeBot).Token(); err != nil {
		t.Errorf("after clearing: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SetTokenError(200, …) did not panic")
			}
		}()
		v.emu.SetTokenError(200, "x", "y")
	}()
	if c := v.emu.Counters(); c.TokenRequests != 5 || c.Mints != 2 || c.TokenErrors != 3 {
		t.Errorf("counters = %+v, want 5 token requests: 2 mints, 3 errors", c)
	}
}

func TestCounters(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space}})
	tok := v.token(t, "", chatapi.ScopeBot) // mint 1
	v.emu.SetTokenError(401, "unauthorized_client", "x")
	v.mintError(t, "", chatapi.ScopeBot) // token error 1
	v.emu.SetTokenError(0, "", "")
	v.mintError(t, "nobody@example.com", chatapi.ScopeMessages) // token error 2: no delegation

	post := func() { v.do(t, "POST", "/v1/spaces/AAAA/messages", tok, "application/json", `{"text":"x"}`) }
	post() // 200
	post() // 200
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Status: 429, Times: 1})
	post() // 429
	v.emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", Reset: true, Times: 1})
	if _, _, _, err := v.send(context.Background(), "POST", "/v1/spaces/AAAA/messages", tok, `{"text":"x"}`); err == nil {
		t.Error("reset: got an answer")
	}
	v.emu.InjectFault(emulator.Fault{Method: "spaces.get", Latency: time.Millisecond, Times: 1})
	v.do(t, "GET", "/v1/spaces/AAAA", tok, "", "")     // 200, delayed
	v.do(t, "GET", "/v1/nothing", tok, "", "")         // 404, unrouted
	v.do(t, "GET", "/v1/spaces/AAAA", "", "", "")      // 401
	v.admin(t, "GET", "/emulator/requests", "")        // not counted
	v.srv.Client().Get(v.srv.URL + "/token")           // 405 at the token endpoint
	v.do(t, "GET", "/v1/spaces/AAAA", "bogus", "", "") // 401

	want := emulator.Counters{
		Requests:       8,
		ByMethod:       map[string]int{"spaces.messages.create": 4, "spaces.get": 3, "": 1},
		ByStatus:       map[int]int{200: 3, 429: 1, 0: 1, 404: 1, 401: 2},
		InjectedFaults: 2,
		Resets:         1,
		Delayed:        1,
		TokenRequests:  4,
		Mints:          1,
		TokenErrors:    3,
	}
	got := v.emu.Counters()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Counters() =\n%+v, want\n%+v", got, want)
	}
	sum := func(m map[int]int) (n int) {
		for _, c := range m {
			n += c
		}
		return n
	}
	if got.Requests != len(v.emu.Requests()) || got.Requests != sum(got.ByStatus) {
		t.Errorf("Requests %d, log %d, by status %d: should agree", got.Requests, len(v.emu.Requests()), sum(got.ByStatus))
	}

	// The control API.
	status, out := v.admin(t, "GET", "/emulator/counters", "")
	if status != 200 || out["requests"] != float64(8) || out["resets"] != float64(1) || out["tokenErrors"] != float64(3) ||
		fmt.Sprint(out["byStatus"]) != "map[0:1 200:3 401:2 404:1 429:1]" ||
		fmt.Sprint(out["byMethod"]) != "map[:1 spaces.get:3 spaces.messages.create:4]" {
		t.Errorf("GET counters: %d %v", status, out)
	}
	if status, out := v.admin(t, "DELETE", "/emulator/counters", ""); status != 200 || out["requests"] != float64(0) || fmt.Sprint(out["byMethod"]) != "map[]" {
		t.Errorf("DELETE counters: %d %v", status, out)
	}
	if c := v.emu.Counters(); !reflect.DeepEqual(c, emulator.Counters{ByMethod: map[string]int{}, ByStatus: map[int]int{}}) {
		t.Errorf("after reset: %+v", c)
	}
}

func TestAdminFaultFields(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{space, "spaces/BBBB"}})
	tok := v.token(t, "", chatapi.ScopeBot)
	status, out := v.admin(t, "POST", "/emulator/faults",
		`{"method":"spaces.messages.create","status":429,"retryAfterSeconds":2,"times":3,"fraction":0.25,"latencyMs":1.5,"spaces":["BBBB"]}`)
	if status != 200 {
		t.Fatalf("POST fault: %d %v", status, out)
	}
	v.admin(t, "POST", "/emulator/faults", `{"method":"spaces.messages.create","resetAfterEffect":true,"times":1}`)
	_, _, raw := v.do(t, "GET", "/emulator/faults", "", "", "")
	wantJSON := `{"faults":[` +
		`{"method":"spaces.messages.create","status":429,"retryAfterSeconds":2,"times":3,"fraction":0.25,"latencyMs":1.5,"spaces":["spaces/BBBB"],"left":3},` +
		`{"method":"spaces.messages.create","status":0,"retryAfterSeconds":0,"times":1,"reset":true,"resetAfterEffect":true,"left":1}]}` + "\n"
	if string(raw) != wantJSON {
		t.Errorf("GET faults:\n%s want\n%s", raw, wantJSON)
	}
	want := []emulator.Fault{
		{Method: "spaces.messages.create", Status: 429, RetryAfter: 2 * time.Second, Times: 3, Fraction: 0.25, Latency: 1500 * time.Microsecond, Spaces: []string{"spaces/BBBB"}},
		{Method: "spaces.messages.create", Times: 1, Reset: true, ResetAfterEffect: true},
	}
	if got := v.emu.Faults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Faults() = %+v, want %+v", got, want)
	}
	// The reset fault acts: the message is created, the answer lost.
	if _, _, _, err := v.send(context.Background(), "POST", "/v1/spaces/AAAA/messages?requestId=a1", tok, `{"text":"x"}`); err == nil {
		t.Error("reset from the control API: got an answer")
	}
	if n := len(v.emu.Messages(space)); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	v.admin(t, "DELETE", "/emulator/faults", "")
	v.admin(t, "POST", "/emulator/faults", `{"latencyMs":20}`)
	if status, out := v.admin(t, "GET", "/emulator/faults", ""); status != 200 || fmt.Sprint(out["faults"]) != "[map[latencyMs:20 method: retryAfterSeconds:0 status:0 times:0]]" {
		t.Errorf("latency-only fault: %v", out)
	}

	// Token error.
	if status, out := v.admin(t, "GET", "/emulator/token-error", ""); status != 200 || fmt.Sprint(out) != "map[description: error: status:0]" {
		t.Errorf("GET token-error: %d %v", status, out)
	}
	status, out = v.admin(t, "POST", "/emulator/token-error", `{"status":400,"error":"invalid_grant","description":"Invalid JWT Signature."}`)
	if status != 200 || out["status"] != float64(400) || out["error"] != "invalid_grant" || out["description"] != "Invalid JWT Signature." {
		t.Errorf("POST token-error: %d %v", status, out)
	}
	if status, body := v.mintError(t, "", chatapi.ScopeBot); status != 400 || body["error_description"] != "Invalid JWT Signature." {
		t.Errorf("mint with a token error: %d %v", status, body)
	}
	if status, out := v.admin(t, "POST", "/emulator/token-error", `{"status":0}`); status != 200 || out["status"] != float64(0) {
		t.Errorf("clear token-error: %d %v", status, out)
	}
	if _, err := v.tokenSource(t, "", chatapi.ScopeBot).Token(); err != nil {
		t.Errorf("mint after clearing: %v", err)
	}

	// Seed.
	if status, out := v.admin(t, "POST", "/emulator/seed", `{"seed":42}`); status != 200 || out["seed"] != float64(42) || v.emu.Seed() != 42 {
		t.Errorf("POST seed: %d %v", status, out)
	}
	v.admin(t, "POST", "/emulator/seed", `{"seed":0}`)
	if status, out := v.admin(t, "GET", "/emulator/seed", ""); status != 200 || out["seed"] == float64(0) || out["seed"] != float64(v.emu.Seed()) {
		t.Errorf("GET seed after a random one: %v (Seed() %d)", out, v.emu.Seed())
	}
}

// Over TLS the reset still reaches the TCP connection, and over HTTP/2,
// where a handler cannot hijack, the stream is reset instead.
func TestFaultResetTLSAndHTTP2(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			emu, err := emulator.New(emulator.Config{Spaces: []string{space}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(emu)
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			t.Cleanup(srv.Close)
			v := &env{emu: emu, srv: srv, tokenURL: srv.URL + "/token"}
			v.key = emu.ServiceAccountJSON(v.tokenURL)
			cfg, err := google.JWTConfigFromJSON(v.key, chatapi.ScopeBot.URL())
			if err != nil {
				t.Fatal(err)
			}
			mint, err := cfg.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())).Token()
			if err != nil {
				t.Fatal(err)
			}
			tok := mint.AccessToken
			emu.InjectFault(emulator.Fault{Method: "spaces.messages.create", ResetAfterEffect: true, Times: 1})
			req, _ := http.NewRequest("POST", srv.URL+"/v1/spaces/AAAA/messages?requestId=r", strings.NewReader(`{"text":"x"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got %s (%s), want a connection error", resp.Status, resp.Proto)
			}
			if !h2 && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
				t.Errorf("client error %v, want ECONNRESET or EOF", err)
			}
			if n := len(emu.Messages(space)); n != 1 {
				t.Errorf("%d messages, want 1", n)
			}
			status, _, body, err := v.send(context.Background(), "POST", "/v1/spaces/AAAA/messages?requestId=r", tok, `{"text":"x"}`)
			if err != nil || status != 200 || len(emu.Messages(space)) != 1 {
				t.Errorf("retry: %d %s %v, %d messages", status, body, err, len(emu.Messages(space)))
			}
		})
	}
}
