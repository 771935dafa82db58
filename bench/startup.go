package bench

import (
	"context"
	"slices"
	"time"
)

// runStartup starts cfg.StartupRuns fresh broker processes, one at a
// time, and measures each from exec to its "serving" line (both
// listeners bound) and to /readyz 200 (its start-up token minted); then,
// after cfg.IdleSettle without traffic, its RSS.
func runStartup(ctx context.Context, e *env, r *Report) error {
	var listening, ready []time.Duration
	var rss []int64
	for range e.cfg.StartupRuns {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := e.startBroker("")
		if err != nil {
			return err
		}
		rd, err := b.waitReadyz(ctx, 30*time.Second)
		if err != nil {
			b.stop()
			return err
		}
		wait(ctx, e.cfg.IdleSettle)
		x, _, err := memStatus(b.pid())
		b.stop()
		if err != nil {
			return err
		}
		listening, ready, rss = append(listening, b.startup), append(ready, rd), append(rss, x)
	}
	slices.Sort(listening)
	slices.Sort(ready)
	slices.Sort(rss)
	mid := len(rss) / 2
	r.Startup = &Startup{
		Runs:            len(rss),
		ListeningMedian: ms(listening[mid]), ListeningMax: ms(listening[len(listening)-1]),
		ReadyMedian: ms(ready[mid]), ReadyMax: ms(ready[len(ready)-1]),
		IdleRSSMedian: rss[mid], IdleRSSMax: rss[len(rss)-1],
		IdleSettleMS: ms(e.cfg.IdleSettle),
	}
	return nil
}
