package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/emulator"
	"github.com/chat-broker/chat-broker/policy"
	"github.com/chat-broker/chat-broker/proxy"
)

// chaosConfig is the chaos command's flags.
type chaosConfig struct {
	creates, concurrency, spaces int
	faultRate                    float64
	seed                         int64
	timeout                      time.Duration
}

// Bounds of a chaos run: it is a demonstration and a test, not a load
// generator.
const (
	maxChaosCreates     = 100_000
	maxChaosConcurrency = 500
	maxChaosSpaces      = 100
	maxChaosTimeout     = 30 * time.Minute
)

func newChaosCommand() *cobra.Command {
	var c chaosConfig
	cmd := &cobra.Command{
		Use:   "chaos [flags]",
		Short: "creates through the broker against a failing emulator: nothing lost or stored twice",
		Long: `Run, in this process and on loopback only, the emulator with faults on
spaces.messages.create (503, 500, 429, and connections reset before and after the
message is stored), a broker in front of it, and concurrent creates through the
official Go client; then compare what the callers were told with what the emulator
stored. It exits 0 when every acknowledged create is stored exactly once, 1 when a
message is stored twice or an acknowledged create is missing.`,
		Example: `  chat-broker chaos
  chat-broker chaos --creates 5000 --fault-rate 0.3 --seed 7`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runChaos(cmd.Context(), c, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.IntVar(&c.creates, "creates", 1000, "`messages` to create through the broker")
	fs.IntVar(&c.concurrency, "concurrency", 20, "`callers` creating at once")
	fs.IntVar(&c.spaces, "spaces", 10, "`number` of spaces the creates are spread over (a Chat 429 holds one space)")
	fs.Float64Var(&c.faultRate, "fault-rate", 0.2, "`share` of Chat's answers to creates that fail: 503, 500, 429, and resets before and after the message is stored")
	fs.Int64Var(&c.seed, "seed", 0, "`seed` of the emulator's fault coin (0: a random one, printed)")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "stop the run after this `long`")
	bindEnv(fs, "CHAOS_")
	return cmd
}

func runChaos(ctx context.Context, c chaosConfig, stdout io.Writer) error {
	switch {
	case c.creates < 1 || c.creates > maxChaosCreates:
		return usageError("--creates %d: want 1 to %d", c.creates, maxChaosCreates)
	case c.concurrency < 1 || c.concurrency > maxChaosConcurrency:
		return usageError("--concurrency %d: want 1 to %d", c.concurrency, maxChaosConcurrency)
	case c.spaces < 1 || c.spaces > maxChaosSpaces:
		return usageError("--spaces %d: want 1 to %d", c.spaces, maxChaosSpaces)
	case !(c.faultRate >= 0 && c.faultRate < 1):
		return usageError("--fault-rate %v: want at least 0 and below 1, e.g. 0.2", c.faultRate)
	case c.timeout <= 0 || c.timeout > maxChaosTimeout:
		return usageError("--timeout %v: want above 0 and at most %v", c.timeout, maxChaosTimeout)
	}
	res, err := runChaosOnce(ctx, c)
	if err != nil {
		return err
	}
	res.print(stdout, c)
	switch {
	case res.duplicates > 0 || res.missing > 0:
		return noError("chaos: %d messages stored twice, %d acknowledged creates missing", res.duplicates, res.missing)
	case res.unsent > 0:
		return fmt.Errorf("chaos: --timeout %v ran out with %d creates not sent", c.timeout, res.unsent)
	}
	return nil
}

// chaosResult is what one run saw.
type chaosResult struct {
	calls, acknowledged, unsent  int
	failed                       map[string]int // by status, or "transport"
	stored, duplicates, missing  int
	stats                        proxy.Stats
	upstream, injected, resets   int
	seed                         int64
	elapsed                      time.Duration
	storedUnacknowledged, spaces int
}

// runChaosOnce runs, in this process and on loopback only, the emulator
// with faults on spaces.messages.create, a broker in front of it, and
// concurrent creates through the official Go client; then it compares
// what the callers were told with what the emulator stored.
func runChaosOnce(ctx context.Context, c chaosConfig) (*chaosResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	spaces := make([]string, c.spaces)
	for i := range spaces {
		spaces[i] = fmt.Sprintf("spaces/CHAOS%02d", i+1)
	}
	emu, err := emulator.New(emulator.Config{Spaces: spaces, Seed: c.seed})
	if err != nil {
		return nil, err
	}
	emuURL, stopEmu, err := serveLoopback(emu)
	if err != nil {
		return nil, fmt.Errorf("chaos: emulator: %w", err)
	}
	defer stopEmu()

	key, err := broker.ParseKey(emu.ServiceAccountJSON(emuURL + "/token"))
	if err != nil {
		return nil, err
	}
	b, err := broker.New(broker.Config{Key: key})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	secret := newSecret()
	pol, err := policy.Parse("chaos-policy.yaml", fmt.Appendf(nil, `version: 1
callers:
  - name: chaos
    identify: {secretSHA256: %q}
    allow:
      - methods: [spaces.messages.create]
        spaces: ["*"]
    scopes: [chat.bot]
`, policy.HashSecret(secret)))
	if err != nil {
		return nil, err
	}
	up, _ := url.Parse(emuURL)
	// The broker as serve runs it, with its default retries, budget,
	// holds and limits.
	px, err := proxy.New(proxy.Config{Upstream: up, Policy: policy.NewStore(pol), Tokens: b.Source(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	brokerURL, stopBroker, err := serveLoopback(px)
	if err != nil {
		return nil, fmt.Errorf("chaos: broker: %w", err)
	}
	defer stopBroker()

	for _, f := range emulator.FaultMix("spaces.messages.create", c.faultRate) {
		emu.InjectFault(f)
	}
	// Plain JSON calls, as any client library makes them; the official
	// Go client is exercised by the tests, and linking it here would
	// double the binary every sidecar runs.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.concurrency, IdleConnTimeout: time.Minute}}
	create := func(space, text string) string {
		body, _ := json.Marshal(map[string]string{"text": text})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, brokerURL+"/v1/"+space+"/messages", bytes.NewReader(body))
		if err != nil {
			return "transport"
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "transport"
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return "2xx"
		}
		return strconv.Itoa(resp.StatusCode)
	}

	start := time.Now()
	outcomes := make([]string, c.creates) // "" not sent, "2xx", a status, "transport"
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= c.creates {
					return
				}
				outcomes[i] = create(spaces[i%len(spaces)], chaosText(i))
			}
		}()
	}
	wg.Wait()

	res := &chaosResult{failed: map[string]int{}, elapsed: time.Since(start), seed: emu.Seed(), spaces: len(spaces)}
	stored := map[string]int{}
	for _, s := range spaces {
		for _, m := range emu.Messages(s) {
			stored[m.Text]++
		}
	}
	for i, o := range outcomes {
		n := stored[chaosText(i)]
		if n > 1 {
			res.duplicates += n - 1
		}
		switch o {
		case "":
			res.unsent++
			continue
		case "2xx":
			res.acknowledged++
			if n == 0 {
				res.missing++
			}
		default:
			res.failed[o]++
			if n > 0 {
				res.storedUnacknowledged++
			}
		}
		res.calls++
	}
	res.stored = len(stored)
	res.stats = px.Stats()
	cn := emu.Counters()
	res.upstream, res.injected, res.resets = cn.ByMethod["spaces.messages.create"], cn.InjectedFaults, cn.Resets
	return res, nil
}

func chaosText(i int) string { return "chaos message " + strconv.Itoa(i) }

// serveLoopback serves h on a fresh loopback port.
func serveLoopback(h http.Handler) (base string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn)}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}

func (r *chaosResult) print(w io.Writer, c chaosConfig) {
	fmt.Fprintf(w, "chat-broker chaos: %d creates by %d callers over %d spaces; %.0f%% of Chat's answers to creates fail (503, 500, 429, resets before and after the message is stored); seed %d\n\n",
		c.creates, c.concurrency, r.spaces, c.faultRate*100, r.seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, v any, note string) { fmt.Fprintf(tw, "  %s\t%v\t%s\n", name, v, note) }
	row("calls", r.calls, "")
	row("acknowledged (2xx)", r.acknowledged, "")
	failed := 0
	var statuses []string
	for s, n := range r.failed {
		failed += n
		statuses = append(statuses, s)
	}
	sort.Strings(statuses)
	row("failed", failed, "")
	for _, s := range statuses {
		row("  "+s, r.failed[s], "")
	}
	if r.unsent > 0 {
		row("not sent (timeout)", r.unsent, "")
	}
	row("messages stored", r.stored, fmt.Sprintf("(%d of them from failed calls)", r.storedUnacknowledged))
	row("duplicates", r.duplicates, "must be 0")
	row("missing acknowledged", r.missing, "must be 0")
	row("upstream attempts", r.stats.Attempts, fmt.Sprintf("(the emulator counted %d; %d faults injected, %d of them resets)", r.upstream, r.injected, r.resets))
	row("retries", r.stats.Retries, fmt.Sprintf("(%.1f%% of calls; %d after a 401)", 100*float64(r.stats.Retries)/float64(max(r.calls, 1)), r.stats.Reauths))
	row("budget exhaustions", r.stats.BudgetExhausted, "(retries the budget refused)")
	row("space holds", r.stats.Holds, "(after Chat's 429s)")
	row("time", r.elapsed.Round(time.Millisecond), "")
	tw.Flush()
}
