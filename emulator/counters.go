package emulator

import (
	"maps"
	"net/http"
)

// Counters are running totals of what the emulator received and did,
// since New or the last ResetCounters. Unlike the request and mint logs
// they are never trimmed. Every counted request is counted before its
// answer is written, so a client that has its answer sees it counted.
type Counters struct {
	// Requests is the number of Chat API requests (not /token, not the
	// control API), routed or not. It equals the sum of ByMethod and the
	// sum of ByStatus.
	Requests int `json:"requests"`
	// ByMethod counts Chat API requests by catalog method id; "" counts
	// requests that matched no method.
	ByMethod map[string]int `json:"byMethod"`
	// ByStatus counts Chat API requests by the status answered; 0 counts
	// connections dropped by a Reset fault.
	ByStatus map[int]int `json:"byStatus"`
	// InjectedFaults counts requests answered by a failing fault: an
	// injected status or a reset (latency-only faults are in Delayed).
	InjectedFaults int `json:"injectedFaults"`
	// Resets counts connections dropped by a Reset fault; they are in
	// InjectedFaults too.
	Resets int `json:"resets"`
	// Delayed counts requests an injected Latency was added to.
	Delayed int `json:"delayed"`
	// TokenRequests counts requests to /token; it equals Mints plus
	// TokenErrors.
	TokenRequests int `json:"tokenRequests"`
	// Mints counts tokens issued at /token (those of generateAccessToken
	// are in the Mints log only).
	Mints int `json:"mints"`
	// TokenErrors counts /token requests answered with an error, injected
	// (SetTokenError, SetTokenEndpointDown) or not (a bad assertion, a
	// sub without delegation, …).
	TokenErrors int `json:"tokenErrors"`
}

// Counters returns a copy of the running totals.
func (e *Emulator) Counters() Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.counters
	c.ByMethod = maps.Clone(c.ByMethod)
	c.ByStatus = maps.Clone(c.ByStatus)
	if c.ByMethod == nil {
		c.ByMethod = map[string]int{}
	}
	if c.ByStatus == nil {
		c.ByStatus = map[int]int{}
	}
	return c
}

// ResetCounters sets every counter to zero.
func (e *Emulator) ResetCounters() {
	e.mu.Lock()
	e.counters = Counters{}
	e.mu.Unlock()
}

// countRequestLocked counts a Chat API request. Callers hold e.mu.
func (e *Emulator) countRequestLocked(r *Request) {
	c := &e.counters
	if c.ByMethod == nil {
		c.ByMethod, c.ByStatus = map[string]int{}, map[int]int{}
	}
	c.Requests++
	c.ByMethod[r.MethodID]++
	c.ByStatus[r.Status]++
}

// countTokenAnswer counts a /token answer by its status.
func (e *Emulator) countTokenAnswer(status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counters.TokenRequests++
	if status == http.StatusOK {
		e.counters.Mints++
	} else {
		e.counters.TokenErrors++
	}
}
