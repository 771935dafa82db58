package proxy

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/retry"
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
	p.limitWait = sh.Wait
	switch {
	case sh.Wait == 0:
		p.limitWait = defaultLimitWait
	case sh.Wait < 0:
		p.limitWait = 0
	}
	sh.HoldBackoff = orDefault(sh.HoldBackoff, defaultHoldBackoff)
	known := quotaClasses()
	p.project = map[chatapi.QuotaClass]*rate.Limiter{}
	for class, rt := range sh.Project {
		if !known[class] {
			return fmt.Errorf("proxy: Shaping.Project: unknown quota class %q", class)
		}
		if !rt.IsZero() {
			p.project[class] = rt.limiter()
		}
	}
	p.shaping = sh
	p.spaceReads = newSpaceLimiters(sh.SpaceReads)
	p.spaceWrites = newSpaceLimiters(sh.SpaceWrites)
	p.holds = &holds{now: p.now, after: p.after, base: sh.HoldBackoff, m: map[string]*holdEntry{}}

	inFlight := cfg.MaxInFlight
	switch {
	case inFlight < 0:
		return fmt.Errorf("proxy: MaxInFlight %d is negative", inFlight)
	case inFlight == 0:
		inFlight = defaultMaxInFlight
	}
	p.slots = make(chan struct{}, inFlight)
	waiting := cfg.MaxWaiting
	switch {
	case waiting < 0:
		waiting = 0
	case waiting == 0:
		waiting = defaultMaxWaiting
	}
	p.waiting = &waitCap{max: int64(waiting), onChange: p.metrics.setWaiting}
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
		Holds:           p.holds.count.Load(),
		InFlight:        int64(len(p.slots)),
		Waiting:         p.waiting.n.Load(),
	}
}
