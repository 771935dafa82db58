package proxy

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// ApprovalState is what the broker has seen of a Workspace admin's
// approval of one chat.app.* scope.
type ApprovalState string

const (
	// ApprovalUnknown: no call with the scope has come back yet.
	ApprovalUnknown ApprovalState = "unknown"
	// Approved: the last call with the scope succeeded.
	Approved ApprovalState = "approved"
	// NotApproved: the last call with the scope got Chat's
	// "administrator must grant the app" 403.
	NotApproved ApprovalState = "not_approved"
)

// Approval is one chat.app.* scope's state, for the admin listener's
// JSON view and metrics.
type Approval struct {
	Scope chatapi.Scope `json:"scope"`
	State ApprovalState `json:"state"`
	// LastSeen is when a response last told the state; zero if never.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// Since is when the state last changed; zero if never.
	Since time.Time `json:"since,omitzero"`
}

// approvals tracks every chat.app.* scope. The set of scopes is fixed by
// the catalog, so the map is built once and each entry is updated with
// atomics: the request path takes no lock.
type approvals map[chatapi.Scope]*approvalEntry

type approvalEntry struct {
	state    atomic.Int32 // 0 unknown, 1 approved, 2 not approved
	lastSeen atomic.Int64 // unix nanoseconds
	since    atomic.Int64
}

var approvalStates = [...]ApprovalState{ApprovalUnknown, Approved, NotApproved}

func newApprovals() approvals {
	a := approvals{}
	for _, s := range chatapi.Scopes() {
		if s.IsApp() {
			a[s] = &approvalEntry{}
		}
	}
	return a
}

// observe records what a response said about scope; it reports whether
// the state changed. Scopes that are not chat.app.* are ignored.
func (a approvals) observe(scope chatapi.Scope, approved bool, now time.Time) bool {
	e, ok := a[scope]
	if !ok {
		return false
	}
	want := int32(2)
	if approved {
		want = 1
	}
	e.lastSeen.Store(now.UnixNano())
	if e.state.Swap(want) == want {
		return false
	}
	e.since.Store(now.UnixNano())
	return true
}

func (a approvals) get(scope chatapi.Scope) Approval {
	e := a[scope]
	out := Approval{Scope: scope, State: ApprovalUnknown}
	if e == nil {
		return out
	}
	out.State = approvalStates[e.state.Load()]
	if n := e.lastSeen.Load(); n != 0 {
		out.LastSeen = time.Unix(0, n).UTC()
	}
	if n := e.since.Load(); n != 0 {
		out.Since = time.Unix(0, n).UTC()
	}
	return out
}

// Approvals reports the state of each chat.app.* scope the current policy
// grants to any caller, sorted by scope. The broker never refuses a call
// because a scope looked unapproved: an admin may approve at any time, and
// the next successful call flips the state back.
func (p *Proxy) Approvals() []Approval {
	seen := map[chatapi.Scope]bool{}
	out := []Approval{}
	for _, c := range p.policy.Load().Callers() {
		for _, s := range c.Scopes {
			if s.IsApp() && !seen[s] {
				seen[s] = true
				out = append(out, p.approvals.get(s))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scope < out[j].Scope })
	return out
}
