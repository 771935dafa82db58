package proxy

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/chat-broker/chat-broker/internal/retry"
	"github.com/chat-broker/chat-broker/internal/shaping"
)

// configureResilience fills in the defaults of the retry, shaping and
// back-pressure settings and builds their state.
func (p *Proxy) configureResilience(cfg Config) error {
	p.after = cfg.After
	if p.after == nil {
		p.after = time.After
	}
	p.deadline = orDefault(cfg.Deadline, defaultDeadline)

	r := cfg.Retries
	switch {
	case r.MaxAttempts < 0:
		return fmt.Errorf("proxy: Retries.MaxAttempts %d is negative: use 1 for no retries", r.MaxAttempts)
	case r.MaxAttempts == 0:
		r.MaxAttempts = defaultMaxAttempts
	}
	r.Backoff = orDefault(r.Backoff, defaultBackoff)
	r.MaxBackoff = max(orDefault(r.MaxBackoff, defaultMaxBackoff), r.Backoff)
	r.BudgetRatio = budgetDefault(r.BudgetRatio, defaultBudgetRatio)
	r.BudgetFloor = budgetDefault(r.BudgetFloor, defaultBudgetFloor)
	p.retries = r
	p.budget = retry.NewBudget(r.BudgetRatio, r.BudgetFloor, p.now())

	sh := cfg.Shaping
	sh.MaxInFlight, sh.MaxWaiting = cfg.MaxInFlight, cfg.MaxWaiting
	sh.Now, sh.After = p.now, p.after
	sh.OnInFlight, sh.OnWaiting = p.metrics.setInFlight, p.metrics.setWaiting
	var err error
	if p.shaper, err = shaping.New(sh); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func budgetDefault(v, def float64) float64 {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return def
	}
	return v
}

// stats are the counters behind Stats.
type stats struct {
	calls, attempts, retries, reauths, exhausted atomic.Int64
}

// Stats are counts of what the proxy did since New, for tests, benchmarks
// and the chaos command; /metrics has the same by method.
type Stats struct {
	// Forwarded is the calls sent upstream (each counted once, however
	// many attempts it took).
	Forwarded int64
	// Attempts is the upstream attempts, retries included.
	Attempts int64
	// Retries is the attempts after the first (Attempts - Forwarded).
	Retries int64
	// Reauths is the retries after a 401 with a freshly minted token.
	Reauths int64
	// BudgetExhausted is the retries the retry budget refused.
	BudgetExhausted int64
	// Holds is the holds Chat's 429s put on a space (or the project).
	Holds int64
	// InFlight and Waiting are the calls forwarding and waiting now.
	InFlight, Waiting int64
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Forwarded:       p.stats.calls.Load(),
		Attempts:        p.stats.attempts.Load(),
		Retries:         p.stats.retries.Load(),
		Reauths:         p.stats.reauths.Load(),
		BudgetExhausted: p.stats.exhausted.Load(),
		Holds:           p.shaper.Holds(),
		InFlight:        p.shaper.InFlight(),
		Waiting:         p.shaper.Waiting(),
	}
}
