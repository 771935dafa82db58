package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/shaping"
	"github.com/chat-broker/chat-broker/proxy"
)

// A small chaos run: a fifth of Chat's answers fail, and still nothing
// the broker acknowledged is lost and nothing is stored twice. Chat's
// 429s carry Retry-After: 1 and the broker honours it in real time, so
// the run takes a few seconds.
func TestChaos(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"chaos", "--creates", "120", "--concurrency", "12", "--spaces", "12", "--seed", "7"}, strings.NewReader(""), &out, io.Discard)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	figure := func(name string) int {
		t.Helper()
		m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + `\s+(\d+)`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no %q in the table", name)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	calls, acked, failed := figure("calls"), figure("acknowledged (2xx)"), figure("failed")
	if calls != 120 || acked+failed != calls {
		t.Errorf("calls %d = acknowledged %d + failed %d? want 120 calls", calls, acked, failed)
	}
	if d, m := figure("duplicates"), figure("missing acknowledged"); d != 0 || m != 0 {
		t.Errorf("%d duplicates, %d missing; want 0 and 0", d, m)
	}
	if stored := figure("messages stored"); stored < acked {
		t.Errorf("%d stored, fewer than the %d acknowledged", stored, acked)
	}
	attempts, retries := figure("upstream attempts"), figure("retries")
	if attempts != calls+retries || retries == 0 {
		t.Errorf("%d attempts for %d calls and %d retries: want calls + retries, with some retries", attempts, calls, retries)
	}
	// The retry budget: 20% of the calls plus 10 per second, from a
	// reserve of 100.
	if retries > calls/5+100+10*60 {
		t.Errorf("%d retries, over the budget", retries)
	}
}

// The shaping flags become the proxy's configuration.
func TestShapingFlagsApply(t *testing.T) {
	var f shapingFlags
	f.maxInFlight, f.maxWaiting, f.deadline, f.maxAttempts = 8, 0, time.Second, 1
	f.spaceWriteLimit, f.projectLimit = "60/m:10", "message-writes=3000/m"
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	var c proxy.Config
	f.apply(&c)
	if c.MaxInFlight != 8 || c.MaxWaiting != -1 || c.Deadline != time.Second || c.Retries.MaxAttempts != 1 || c.Shaping.Wait != -1 ||
		c.Shaping.SpaceWrites != (shaping.Rate{Events: 60, Per: time.Minute, Burst: 10}) || c.Shaping.Project[chatapi.QuotaMessageWrites].Events != 3000 {
		t.Errorf("flags became %+v", c)
	}
}

// serve's --space-write-limit refuses the call over the limit with 429
// SPACE_RATE_LIMITED before it reaches Chat, and /metrics shows the
// refusal and the new series.
func TestServeSpaceLimit(t *testing.T) {
	dir := t.TempDir()
	policyFile := writePolicy(t, dir, opsPolicy("spaces/AAAA, spaces/BBBB"))
	listen, admin, _, _ := startServe(t, dir, policyFile, "--space-write-limit", "1/h:2", "--rate-limit-wait", "0", "--max-in-flight", "4")
	var codes []int
	for _, space := range []string{"spaces/AAAA", "spaces/AAAA", "spaces/AAAA", "spaces/BBBB"} {
		code, err := create(listen, space)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, code)
	}
	if want := []int{200, 200, 429, 200}; !slices.Equal(codes, want) {
		t.Errorf("creates answered %v, want %v", codes, want)
	}
	_, body := fetch(t, "http://"+admin+"/metrics")
	for _, want := range []string{
		`chat_broker_refusals_total{reason="SPACE_RATE_LIMITED"} 1`,
		`chat_broker_rate_limited_total{caller="app"} 1`,
		`chat_broker_upstream_attempts_total{code="2xx",method="spaces.messages.create"} 3`,
		`chat_broker_in_flight 0`,
		`chat_broker_waiting 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
