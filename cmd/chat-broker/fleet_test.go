package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/redistest"
	"github.com/chat-broker/chat-broker/internal/testenv"
)

// A fleet: broker processes of one app, one emulator (whose clock stands
// still, so its quota's minute never ends), and, when asked, one Redis.

// buildBinary builds the chat-broker binary once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "chat-broker-fleet-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "chat-broker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// brokerProc is a running "chat-broker serve" process.
type brokerProc struct {
	listen, admin  string
	stdout, stderr *lines
}

var servingLine = regexp.MustCompile(`"msg":"serving","listen":"([^"]+)","admin":"([^"]+)"`)

func startBrokerProc(t testing.TB, bin string, args ...string) *brokerProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain", "1s"}, args...)...)
	p := &brokerProc{stdout: newLines(), stderr: newLines()}
	cmd.Stdout = p.stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	serving := make(chan []string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.stderr.Write([]byte(sc.Text() + "\n"))
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				serving <- m
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
	})
	select {
	case m := <-serving:
		p.listen, p.admin = m[1], m[2]
	case <-done:
		t.Fatalf("the broker exited: %s", drain(p.stderr))
	case <-time.After(30 * time.Second):
		t.Fatalf("the broker did not serve within 30s: %s", drain(p.stderr))
	}
	return p
}

// metric reads one unlabelled series from the broker's /metrics; -1 when
// absent.
func (p *brokerProc) metric(t testing.TB, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, line)
			}
			return f
		}
	}
	return -1
}

// fleet is an emulator with spaces/AAAA and the files a broker needs.
type fleet struct {
	bin, keyFile, policyFile string
	emu                      *emulator.Emulator
	emuURL                   string
	client                   *http.Client
}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs broker processes; skipped with -short")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	// From now (the brokers sign their assertions on the real clock),
	// standing still.
	clk := fakeclock.NewAt(time.Now())
	emu, emuURL := testenv.Emulator(t, emulator.Config{Spaces: []string{"spaces/AAAA"}, Now: clk.Now})
	dir := t.TempDir()
	f := &fleet{bin: bin, emu: emu, emuURL: emuURL,
		keyFile:    testenv.KeyFile(t, emu, emuURL, dir),
		policyFile: filepath.Join(dir, "policy.yaml"),
		client:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	if err := os.WriteFile(f.policyFile, []byte(opsPolicy("spaces/AAAA")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.client.CloseIdleConnections)
	return f
}

func (f *fleet) start(t testing.TB, n int, extra ...string) []*brokerProc {
	t.Helper()
	args := append([]string{"--key", f.keyFile, "--policy", f.policyFile, "--upstream", f.emuURL}, extra...)
	var ps []*brokerProc
	for range n {
		ps = append(ps, startBrokerProc(t, f.bin, args...))
	}
	return ps
}

// post creates a message through the broker at listen and returns the
// status (0 when the call failed on the wire) and the body.
func (f *fleet) post(listen string) (int, string) {
	req, _ := http.NewRequest("POST", "http://"+listen+"/v1/spaces/AAAA/messages", strings.NewReader(`{"text":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+opsSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// burst sends perBroker calls at once to each broker and counts what
// came back: 200s, 429s the broker answered itself (chat-broker's
// domain), 429s from Chat, and anything else.
type burstResult struct{ accepted, brokerRefused, chat429, failed int }

func (f *fleet) burst(t testing.TB, brokers []*brokerProc, perBroker int) burstResult {
	t.Helper()
	var mu sync.Mutex
	var r burstResult
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, b := range brokers {
		for range perBroker {
			wg.Go(func() {
				<-start
				status, body := f.post(b.listen)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case status == 200:
					r.accepted++
				case status == 429 && strings.Contains(body, `"domain":"chat-broker"`):
					r.brokerRefused++
				case status == 429:
					r.chat429++
				default:
					r.failed++
					t.Logf("failed call: %d %s", status, body)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	return r
}

// Five broker processes of one app, a per-project quota of 20 message
// writes a minute at Chat, and a burst of 20 calls from each broker
// (200 with CHAT_BROKER_FLEET_LONG=1).
// Each broker allows the project 20 (--project-limit 20/h:20: a burst of
// 20, then one every 3 minutes). Alone, each lets its 20 go and Chat
// answers most of the 100 with 429; sharing the bucket on Redis, the
// fleet lets 20 go in all and Chat answers no 429. With Redis down and
// --shared-limits-brokers 5, each broker paces alone at a fifth of the
// limit (a burst of 4), so the fleet again lets 20 go.
func TestFleetSharesProjectLimit(t *testing.T) {
	f := newFleet(t)
	redis := redistest.Start(t, redistest.Options{})
	brokers, perBroker, quota := 5, 20, 20
	if fleetLong() {
		perBroker, quota = 200, 200
	}
	// One attempt per call, and calls held after Chat's 429 give up
	// after 2 s, so that each 429 is Chat's answer to one call.
	base := []string{"--project-limit", fmt.Sprintf("message-writes=%d/h:%d", quota, quota), "--rate-limit-wait", "0", "--max-attempts", "1", "--request-deadline", "2s"}
	tests := []struct {
		name    string
		shared  bool
		down    bool // Redis does not answer
		cluster bool // a Redis Cluster of three masters
	}{
		{"each broker alone", false, false, false},
		{"shared on Redis", true, false, false},
		{"shared on a Redis Cluster", true, false, true},
		{"Redis down, each broker its share", true, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.emu.SetQuotas(emulator.Quotas{Project: map[chatapi.QuotaClass]int{chatapi.QuotaMessageWrites: quota}}); err != nil {
				t.Fatal(err)
			}
			exceeded := f.emu.QuotaExceeded()
			args, urls := base, []string{redis.URL}
			if tc.shared {
				args = append(slices.Clone(base), "--shared-limits-app", "fleet-"+strconv.FormatInt(time.Now().UnixNano(), 36), "--shared-limits-budget", "250ms",
					"--shared-limits-brokers", strconv.Itoa(brokers))
				switch {
				case tc.down:
					gone := redistest.Start(t, redistest.Options{})
					gone.Stop()
					urls = []string{gone.URL}
				case tc.cluster:
					// The brokers start from different nodes.
					urls = nil
					for _, n := range redistest.StartCluster(t, 3) {
						urls = append(urls, n.URL)
					}
					args = append(args, "--shared-limits-cluster")
				}
			}
			var ps []*brokerProc
			for i := range brokers {
				a := args
				if tc.shared {
					a = append(slices.Clone(args), "--shared-limits", urls[i%len(urls)])
				}
				ps = append(ps, f.start(t, 1, a...)...)
			}
			r := f.burst(t, ps, perBroker)
			chat429 := f.emu.QuotaExceeded() - exceeded
			t.Logf("%s: %d calls: %d accepted by Chat, %d answered 429 by Chat, %d refused by the brokers (429 with Retry-After), %d failed",
				tc.name, brokers*perBroker, r.accepted, chat429, r.brokerRefused, r.failed)
			if r.failed != 0 || r.accepted != quota || r.chat429 != chat429 {
				t.Errorf("got %+v with %d quota 429s at Chat; want %d accepted, no failure, every 429 from Chat passed on", r, chat429, quota)
			}
			if tc.shared {
				if chat429 != 0 || r.brokerRefused != brokers*perBroker-quota {
					t.Errorf("shared: Chat answered %d 429s and the brokers refused %d; want 0 and %d", chat429, r.brokerRefused, brokers*perBroker-quota)
				}
				for i, p := range ps {
					if up, want := p.metric(t, "chat_broker_shared_limits_up"), map[bool]float64{false: 1, true: 0}[tc.down]; up != want {
						t.Errorf("broker %d: chat_broker_shared_limits_up %v, want %v", i, up, want)
					}
				}
			} else if chat429 < 1 || chat429+r.brokerRefused != brokers*perBroker-quota {
				// No broker holds the space before Chat's first 429 comes
				// back to it, so calls beyond the quota reach Chat; how
				// many depends on how fast the 429s come back (the rest
				// are refused during the holds they start).
				t.Errorf("alone: Chat answered %d 429s and the brokers refused %d; want at least 1, %d in all", chat429, r.brokerRefused, brokers*perBroker-quota)
			}
		})
	}
}

// Redis stopped in the middle of a run of calls from five brokers and
// started again: no call fails; each broker says once that it paces
// alone, and goes back to the shared limits when Redis returns.
// CHAT_BROKER_FLEET_LONG=1 runs more calls and three outages.
func TestFleetSurvivesRedisRestart(t *testing.T) {
	f := newFleet(t)
	redis := redistest.Start(t, redistest.Options{})
	if err := f.emu.SetQuotas(emulator.Quotas{}); err != nil {
		t.Fatal(err)
	}
	outages, between := 1, 200
	if fleetLong() {
		outages, between = 3, 2000
	}
	ps := f.start(t, 5, "--project-limit", "message-writes=1000000/m", "--shared-limits", redis.URL,
		"--shared-limits-budget", "250ms", "--shared-limits-probe", "50ms")

	// Each broker gets calls one after another, two at a time, until
	// told to stop; every answer is reported on done.
	type answer struct {
		status int
		body   string
	}
	done := make(chan answer, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range ps {
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					status, body := f.post(p.listen)
					done <- answer{status, body}
				}
			})
		}
	}
	var calls, failed int
	await := func(n int, until func() bool) {
		t.Helper()
		for i := 0; i < n || (until != nil && !until()); i++ {
			if i > 200_000 {
				t.Fatal("the brokers never reached the state the test waits for")
			}
			a := <-done
			calls++
			if a.status != 200 {
				failed++
				if failed < 10 {
					t.Logf("failed call: %d %s", a.status, a.body)
				}
			}
		}
	}
	allUp := func(want float64) func() bool {
		return func() bool {
			for _, p := range ps {
				if p.metric(t, "chat_broker_shared_limits_up") != want {
					return false
				}
			}
			return true
		}
	}
	await(between, nil)
	if !allUp(1)() {
		t.Fatal("not every broker uses the shared limits before the outage")
	}
	for range outages {
		redis.Stop()
		await(between, allUp(0)) // calls go on until every broker paces alone
		redis.Restart()
		await(between, allUp(1)) // and until every one is back
	}
	close(stop)
	go func() {
		wg.Wait()
		close(done)
	}()
	for a := range done {
		calls++
		if a.status != 200 {
			failed++
		}
	}
	t.Logf("Redis stopped %d times and started again during %d calls from 5 brokers: %d failed", outages, calls, failed)
	if failed != 0 {
		t.Errorf("%d of %d calls failed", failed, calls)
	}
	for i, p := range ps {
		logs := drain(p.stderr)
		if n := strings.Count(logs, "did not answer within its budget"); n != outages {
			t.Errorf("broker %d said %d times that it falls back, want once per outage (%d):\n%s", i, n, outages, logs)
		}
		if n := strings.Count(logs, "answers again"); n != outages {
			t.Errorf("broker %d said %d times that it is back, want %d", i, n, outages)
		}
		if fb := p.metric(t, "chat_broker_shared_limits_fallbacks_total"); fb != float64(outages) {
			t.Errorf("broker %d: chat_broker_shared_limits_fallbacks_total %v, want %d", i, fb, outages)
		}
	}
}

// fleetLong reports whether CHAT_BROKER_FLEET_LONG asks for the long
// version of the fleet tests.
func fleetLong() bool { return os.Getenv("CHAT_BROKER_FLEET_LONG") != "" }

// The Redis password, from its file, never shows: not in a log line, an
// audit line, /metrics or a response, whether Redis takes it or refuses
// it; and a password in the URL is refused without being echoed.
func TestSharedLimitsPasswordNeverShows(t *testing.T) {
	f := newFleet(t)
	const password = "redis-pw-9c1e5b7a-do-not-print"
	redis := redistest.Start(t, redistest.Options{Password: password})
	dir := t.TempDir()
	right, wrong := filepath.Join(dir, "right"), filepath.Join(dir, "wrong")
	os.WriteFile(right, []byte(password+"\n"), 0o600)
	os.WriteFile(wrong, []byte("x"+password+"\n"), 0o600)
	tests := []struct {
		name, file string
		wantUp     float64
	}{
		{"right password", right, 1},
		{"wrong password", wrong, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := f.start(t, 1, "--shared-limits", redis.URL, "--shared-limits-password-file", tc.file, "--shared-limits-budget", "250ms")[0]
			var seen strings.Builder
			for range 5 {
				status, body := f.post(p.listen)
				if status != 200 {
					t.Errorf("call: %d %s", status, body)
				}
				seen.WriteString(body)
			}
			if up := p.metric(t, "chat_broker_shared_limits_up"); up != tc.wantUp {
				t.Errorf("chat_broker_shared_limits_up %v, want %v", up, tc.wantUp)
			}
			_, metrics := fetch(t, "http://"+p.admin+"/metrics")
			for what, text := range map[string]string{"stderr": drain(p.stderr), "stdout": drain(p.stdout), "metrics": metrics, "responses": seen.String()} {
				if strings.Contains(text, password) {
					t.Errorf("the password shows in %s", what)
				}
			}
			if tc.wantUp == 0 && !strings.Contains(drain(p.stderr), "WRONGPASS") {
				t.Errorf("the fall-back line does not say why: %s", drain(p.stderr))
			}
		})
	}
	t.Run("password in the URL", func(t *testing.T) {
		url := "redis://default:" + password + "@" + redis.Addr + "/0"
		cmd := exec.Command(f.bin, "serve", "--key", f.keyFile, "--policy", f.policyFile, "--upstream", f.emuURL, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--shared-limits", url)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatal("serve started with a password in --shared-limits")
		}
		if strings.Contains(string(out), password) || !strings.Contains(string(out), "--shared-limits-password-file") {
			t.Errorf("output: %s", out)
		}
	})
}

// What the Redis round trip adds to a call: two brokers in front of one
// emulator, one pacing alone and one with --shared-limits (one Redis, or
// a Redis Cluster of three masters), with the same project limit, called
// one call at a time in turn (so machine noise hits both alike). It
// reports each one's p50 and the difference.
//
//	go test -run '^$' -bench SharedLimitsAdded -benchtime 4000x ./cmd/chat-broker/
func BenchmarkSharedLimitsAdded(b *testing.B) {
	for _, store := range []string{"redis", "cluster"} {
		b.Run(store, func(b *testing.B) {
			f := newFleet(b)
			limit := []string{"--project-limit", "message-writes=1000000/m", "--space-write-limit", "1000000/m"}
			shareArgs := []string{"--shared-limits", redistest.Start(b, redistest.Options{}).URL}
			if store == "cluster" {
				shareArgs = []string{"--shared-limits", redistest.StartCluster(b, 3)[0].URL, "--shared-limits-cluster"}
			}
			local := f.start(b, 1, limit...)[0]
			shared := f.start(b, 1, append(slices.Clone(limit), shareArgs...)...)[0]
			benchAdded(b, f, local, shared)
		})
	}
}

// benchAdded calls local and shared in turn b.N times each and reports
// their p50s.
func benchAdded(b *testing.B, f *fleet, local, shared *brokerProc) {
	for _, p := range []*brokerProc{local, shared} { // warm: tokens, connections, the script
		for range 50 {
			if status, body := f.post(p.listen); status != 200 {
				b.Fatalf("warm-up: %d %s", status, body)
			}
		}
	}
	var tl, ts []time.Duration
	call := func(p *brokerProc, into *[]time.Duration) {
		start := time.Now()
		if status, body := f.post(p.listen); status != 200 {
			b.Fatalf("%d %s", status, body)
		}
		*into = append(*into, time.Since(start))
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			call(local, &tl)
			call(shared, &ts)
		} else {
			call(shared, &ts)
			call(local, &tl)
		}
	}
	b.StopTimer()
	if up := shared.metric(b, "chat_broker_shared_limits_up"); up != 1 {
		b.Fatalf("the shared broker fell back during the run (up %v): its figures are local ones\n%s", up, drain(shared.stderr))
	}
	p50 := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds())
	}
	l, s := p50(tl), p50(ts)
	b.ReportMetric(l, "p50-local-µs")
	b.ReportMetric(s, "p50-shared-µs")
	b.ReportMetric(s-l, "added-p50-µs")
	b.ReportMetric(s/l, "ratio")
	b.ReportMetric(0, "ns/op")
}
