package approvals

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// State is what the broker has seen of the approval of one scope.
type State string

const (
	// Unknown: no call with the scope has come back yet.
	Unknown State = "unknown"
	// Approved: the last call with the scope succeeded.
	Approved State = "approved"
	// NotApproved: the last call with the scope got Chat's
	// "administrator must grant the app" 403.
	NotApproved State = "not_approved"
)

// Approval is one chat.app.* scope's state, for the admin listener's
// JSON view and metrics.
type Approval struct {
	Scope chatapi.Scope `json:"scope"`
	State State         `json:"state"`
	// LastSeen is when a response last told the state; zero if never.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// Since is when the state last changed; zero if never.
	Since time.Time `json:"since,omitzero"`
}

// Tracker holds the state of every chat.app.* scope of the catalog.
type Tracker map[chatapi.Scope]*entry

type entry struct {
	state    atomic.Int32 // 0 unknown, 1 approved, 2 not approved
	lastSeen atomic.Int64 // unix nanoseconds
	since    atomic.Int64
}

var states = [...]State{Unknown, Approved, NotApproved}

// New returns a Tracker with every chat.app.* scope unknown.
func New() Tracker {
	a := Tracker{}
	for _, s := range chatapi.Scopes() {
		if s.IsApp() {
			a[s] = &entry{}
		}
	}
	return a
}

// Observe records what a response at now said about scope; it reports
// whether the state changed. Scopes that are not chat.app.* are ignored.
func (a Tracker) Observe(scope chatapi.Scope, approved bool, now time.Time) bool {
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

func (a Tracker) get(scope chatapi.Scope) Approval {
	e := a[scope]
	out := Approval{Scope: scope, State: Unknown}
	if e == nil {
		return out
	}
	out.State = states[e.state.Load()]
	if n := e.lastSeen.Load(); n != 0 {
		out.LastSeen = time.Unix(0, n).UTC()
	}
	if n := e.since.Load(); n != 0 {
		out.Since = time.Unix(0, n).UTC()
	}
	return out
}

// Report returns the state of each chat.app.* scope among granted, once
// each, sorted by scope.
func (a Tracker) Report(granted []chatapi.Scope) []Approval {
	seen := map[chatapi.Scope]bool{}
	out := []Approval{}
	for _, s := range granted {
		if s.IsApp() && !seen[s] {
			seen[s] = true
			out = append(out, a.get(s))
		}
	}
	slices.SortFunc(out, func(x, y Approval) int { return cmp.Compare(x.Scope, y.Scope) })
	return out
}
