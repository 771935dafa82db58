package emulator

import (
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Quotas are Chat's per-minute usage limits, which the emulator enforces
// when set, as Chat does: a request past one is answered 429
// RESOURCE_EXHAUSTED with Chat's quota error (ErrorInfo reason
// RATE_LIMIT_EXCEEDED, its quota metric and limit, and a Help link;
// without Retry-After or RetryInfo, as Chat's quota errors usually come)
// and is not counted. A limit of 0 (or absent) is not enforced.
//
// Windows are whole minutes of the emulator's clock (Config.Now): each
// minute's counts start at 0. A test that must not see a window end
// gives the emulator a clock that stands still.
type Quotas struct {
	// Project limits the requests per minute to each quota class
	// (chatapi.QuotaClass, "message-writes", …) for the whole project,
	// whichever broker or app they come from. Chat's published figures:
	// 3,000 message writes and 3,000 message reads per minute, 60 space
	// writes per minute.
	Project map[chatapi.QuotaClass]int `json:"project,omitempty"`
	// SpaceWrites and SpaceReads limit the writes and reads per minute to
	// each space (calls that name no space are not counted). Chat's
	// per-space limits are shared by every app in the space: 60 writes per
	// minute (older figures) and 15 reads per second.
	SpaceWrites int `json:"spaceWrites,omitempty"`
	SpaceReads  int `json:"spaceReads,omitempty"`
}

func (q Quotas) normalize() (Quotas, error) {
	if q.SpaceWrites < 0 || q.SpaceReads < 0 {
		return q, fmt.Errorf("per-space quotas must be 0 (off) or more, got writes %d, reads %d", q.SpaceWrites, q.SpaceReads)
	}
	known := map[chatapi.QuotaClass]bool{}
	for _, m := range chatapi.Methods() {
		known[m.Quota] = true
	}
	out := q
	out.Project = map[chatapi.QuotaClass]int{}
	for c, n := range q.Project {
		switch {
		case !known[c]:
			return q, fmt.Errorf("project quota %q: no such quota class (e.g. message-writes)", c)
		case n < 0:
			return q, fmt.Errorf("project quota %s: %d is negative", c, n)
		case n > 0:
			out.Project[c] = n
		}
	}
	return out, nil
}

// quotaState counts each minute's requests against the quotas. It has
// its own lock: counting is all it does.
type quotaState struct {
	mu       sync.Mutex
	q        Quotas
	window   time.Time      // the minute being counted
	used     map[string]int // "project:CLASS" or "space-writes:spaces/X" → requests this minute
	exceeded int            // requests answered 429 for a quota, ever
}

// SetQuotas sets the quotas the emulator enforces (the zero Quotas: none)
// and starts counting afresh. It fails on an unknown quota class or a
// negative limit.
func (e *Emulator) SetQuotas(q Quotas) error {
	q, err := q.normalize()
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	e.quota.mu.Lock()
	defer e.quota.mu.Unlock()
	e.quota.q = q
	e.quota.used = map[string]int{}
	e.quota.window = time.Time{}
	return nil
}

// Quotas returns the quotas in force.
func (e *Emulator) Quotas() Quotas {
	e.quota.mu.Lock()
	defer e.quota.mu.Unlock()
	q := e.quota.q
	q.Project = maps.Clone(q.Project)
	return q
}

// QuotaExceeded is the number of requests answered 429 because a quota
// was exceeded (injected 429s are counted in Counters.InjectedFaults).
func (e *Emulator) QuotaExceeded() int {
	e.quota.mu.Lock()
	defer e.quota.mu.Unlock()
	return e.quota.exceeded
}

// checkQuota counts a request of m to space against the quotas, or
// answers Chat's quota error when one is used up.
func (e *Emulator) checkQuota(m *chatapi.Method, space string) *chatapi.Error {
	q := &e.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	type bucket struct {
		key   string
		limit int
		per   string // "project" or "space"
	}
	var bs []bucket
	if n := q.q.Project[m.Quota]; n > 0 {
		bs = append(bs, bucket{"project:" + string(m.Quota), n, "project"})
	}
	if space != "" {
		if n := q.q.SpaceWrites; n > 0 && !m.ReadOnly {
			bs = append(bs, bucket{"space-writes:" + space, n, "space"})
		}
		if n := q.q.SpaceReads; n > 0 && m.ReadOnly {
			bs = append(bs, bucket{"space-reads:" + space, n, "space"})
		}
	}
	if len(bs) == 0 {
		return nil
	}
	if w := e.now().Truncate(time.Minute); !w.Equal(q.window) {
		q.window, q.used = w, map[string]int{}
	}
	for _, b := range bs {
		if q.used[b.key] >= b.limit {
			q.exceeded++
			e.log.Info("emulator: quota exceeded", "method", m.ID, "quota", b.key, "limit", b.limit)
			return e.quotaError(m, b.per)
		}
	}
	for _, b := range bs {
		q.used[b.key]++
	}
	return nil
}

// quotaError is Chat's 429 for a used-up quota, naming the per-project
// or per-space limit; an injected 429 fault (Fault.Status 429) answers
// it too.
func (e *Emulator) quotaError(m *chatapi.Method, per string) *chatapi.Error {
	metric, limit := "Read requests", "Read requests per minute per "+per
	if !m.ReadOnly {
		metric, limit = "Write requests", "Write requests per minute per "+per
	}
	md := map[string]string{
		"consumer":     "projects/" + e.project,
		"service":      "chat.googleapis.com",
		"quota_metric": "chat.googleapis.com/" + string(m.Quota),
		"quota_limit":  limit,
	}
	err := chatapi.NewError(http.StatusTooManyRequests, fmt.Sprintf(
		"Quota exceeded for quota metric '%s' and limit '%s' of service 'chat.googleapis.com' for consumer 'project_number:%s'.",
		metric, limit, e.project)).WithInfo(chatapi.DomainGoogle, "RATE_LIMIT_EXCEEDED", md)
	err.Details = append(err.Details, chatapi.Detail{Type: chatapi.TypeHelp, Links: []chatapi.Link{{
		Description: "Request a higher quota limit.",
		URL:         "https://cloud.google.com/docs/quotas/help/request_increase",
	}}})
	return err
}

// ParseQuotas reads quotas written "CLASS=N,…" (requests per minute per
// project), with "per-space-writes=N" and "per-space-reads=N" for the
// per-space quotas, e.g. "message-writes=3000,per-space-writes=60".
func ParseQuotas(s string) (Quotas, error) {
	var q Quotas
	q.Project = map[chatapi.QuotaClass]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, num, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if !ok || err != nil || n < 0 {
			return q, fmt.Errorf("quota %q: want NAME=requests per minute, e.g. message-writes=3000", part)
		}
		switch name = strings.TrimSpace(name); name {
		case "per-space-writes":
			q.SpaceWrites = n
		case "per-space-reads":
			q.SpaceReads = n
		default:
			q.Project[chatapi.QuotaClass(name)] = n
		}
	}
	return q.normalize()
}

// The control API's /emulator/quotas, registered here to keep the quota
// model in one file.
func init() {
	adminRoutes["/emulator/quotas"] = adminEndpoint((*Emulator).adminGetQuotas, decoded((*Emulator).postQuotas), (*Emulator).clearQuotas)
}

type quotasOut struct {
	Quotas   Quotas         `json:"quotas"`
	Used     map[string]int `json:"used"` // this minute's counts
	Exceeded int            `json:"exceeded"`
}

func (e *Emulator) adminGetQuotas(*http.Request) (any, *chatapi.Error) {
	e.quota.mu.Lock()
	defer e.quota.mu.Unlock()
	out := quotasOut{Quotas: e.quota.q, Used: map[string]int{}, Exceeded: e.quota.exceeded}
	out.Quotas.Project = maps.Clone(out.Quotas.Project)
	if e.now().Truncate(time.Minute).Equal(e.quota.window) {
		keys := make([]string, 0, len(e.quota.used))
		for k := range e.quota.used {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out.Used[k] = e.quota.used[k]
		}
	}
	return out, nil
}

func (e *Emulator) postQuotas(q *Quotas) *chatapi.Error {
	if err := e.SetQuotas(*q); err != nil {
		return invalidArgument("chat-broker " + err.Error())
	}
	return nil
}

// clearQuotas lifts every quota.
func (e *Emulator) clearQuotas() { e.SetQuotas(Quotas{}) }
