package main

import (
	"strings"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/shaping"
	"github.com/chat-broker/chat-broker/proxy"
)

// shapingFlags are the retry, rate-limit and back-pressure flags of serve
// and demo (proxy.Config's Deadline, Retries, Shaping, MaxInFlight and
// MaxWaiting).
type shapingFlags struct {
	maxInFlight, maxWaiting int
	deadline                time.Duration
	maxAttempts             int
	rateLimitWait           time.Duration
	spaceWriteLimit         string
	spaceReadLimit          string
	projectLimit            string
	shared                  sharedFlags // --shared-limits (sharedlimits.go)

	// Parsed by check.
	spaceWrites, spaceReads shaping.Rate
	project                 map[chatapi.QuotaClass]shaping.Rate
}

func (f *shapingFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.maxInFlight, "max-in-flight", 256, "most `calls` forwarded to Chat at once; past it calls wait (--max-waiting)")
	fs.IntVar(&f.maxWaiting, "max-waiting", 1024, "most `calls` waiting at once (for a slot, a rate limit or a hold); past it calls get 503 OVERLOADED with Retry-After")
	fs.DurationVar(&f.deadline, "request-deadline", 30*time.Second, "how `long` the broker may wait and retry for one call; a response under way is never cut")
	fs.IntVar(&f.maxAttempts, "max-attempts", 5, "`attempts` per call, the first included, for reads and deduplicated writes (1: no retries)")
	fs.DurationVar(&f.rateLimitWait, "rate-limit-wait", time.Second, "how `long` a call over a rate limit may wait for its turn before it gets 429 (0: never wait)")
	fs.StringVar(&f.spaceWriteLimit, "space-write-limit", "", "per-space limit on writes, a `rate` such as 60/m or 60/m:10 (burst); default off")
	fs.StringVar(&f.spaceReadLimit, "space-read-limit", "", "per-space limit on reads, a `rate` such as 15/s; default off")
	fs.StringVar(&f.projectLimit, "project-limit", "", "per-project `limits` by Chat quota class, e.g. message-writes=3000/m,space-writes=60/m; default off")
	f.shared.register(fs)
	setGroup(fs, groupLimits, "max-in-flight", "max-waiting", "request-deadline", "max-attempts", "rate-limit-wait", "space-write-limit", "space-read-limit", "project-limit")
}

// check validates the flags, naming the flag in each error.
func (f *shapingFlags) check() error {
	switch {
	case f.maxInFlight < 1:
		return usageError("--max-in-flight %d: want at least 1", f.maxInFlight)
	case f.maxWaiting < 0:
		return usageError("--max-waiting %d: want 0 or more (0: calls never wait for a slot)", f.maxWaiting)
	case f.deadline <= 0:
		return usageError("--request-deadline %v: want a duration above 0, e.g. 30s", f.deadline)
	case f.maxAttempts < 1:
		return usageError("--max-attempts %d: want at least 1 (1 turns retries off)", f.maxAttempts)
	case f.rateLimitWait < 0:
		return usageError("--rate-limit-wait %v: want a duration >= 0", f.rateLimitWait)
	}
	var err error
	if f.spaceWrites, err = shaping.ParseRate(f.spaceWriteLimit); err != nil {
		return usageError("--space-write-limit %q: %s", f.spaceWriteLimit, strings.TrimPrefix(err.Error(), "proxy: "))
	}
	if f.spaceReads, err = shaping.ParseRate(f.spaceReadLimit); err != nil {
		return usageError("--space-read-limit %q: %s", f.spaceReadLimit, strings.TrimPrefix(err.Error(), "proxy: "))
	}
	if f.project, err = shaping.ParseProjectLimits(f.projectLimit); err != nil {
		return usageError("--project-limit %q: %s", f.projectLimit, strings.TrimPrefix(err.Error(), "proxy: "))
	}
	return f.shared.check()
}

// apply sets the proxy configuration from flags that passed check.
func (f *shapingFlags) apply(c *proxy.Config) {
	c.MaxInFlight = f.maxInFlight
	c.MaxWaiting = f.maxWaiting
	if f.maxWaiting == 0 {
		c.MaxWaiting = -1 // proxy.Config reads 0 as the default
	}
	c.Deadline = f.deadline
	c.Retries.MaxAttempts = f.maxAttempts
	c.Shaping.Wait = f.rateLimitWait
	if f.rateLimitWait == 0 {
		c.Shaping.Wait = -1
	}
	c.Shaping.SpaceWrites = f.spaceWrites
	c.Shaping.SpaceReads = f.spaceReads
	c.Shaping.Project = f.project
}
