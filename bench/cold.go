package bench

import (
	"context"
	"fmt"
	"net/http"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// herdKind is one kind of first call, and the token key it needs.
type herdKind struct {
	op      op
	bearer  string
	subject string
	scopes  []chatapi.Scope
}

func mintKey(subject string, scopes []chatapi.Scope) string {
	return subject + "\x00" + chatapi.ScopeKey(scopes)
}

func countMints(ms []emulator.Mint) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[mintKey(m.Subject, m.Scopes)]++
	}
	return out
}

// runColdHerd starts a fresh broker process and, as soon as it listens,
// fires cfg.Herd first calls at once over six kinds of call that need
// five token keys; then it counts the mints at the emulator. The
// broker's start-up self-test also asks for (app, chat.bot): it shares
// that key's one mint or finds it cached.
func runColdHerd(ctx context.Context, e *env, r *Report) error {
	s := e.secrets
	kinds := []herdKind{
		{opGet, s.notifier, "", []chatapi.Scope{chatapi.ScopeBot}},
		{opCreate, s.notifier, "", []chatapi.Scope{chatapi.ScopeBot}},
		{opList, s.notifier, "", []chatapi.Scope{chatapi.ScopeAppMessagesReadonly}},
		{opCreate, s.delegate, alice, []chatapi.Scope{chatapi.ScopeMessagesCreate}},
		{opList, s.delegate, alice, []chatapi.Scope{chatapi.ScopeMessagesReadonly}},
		{opList, s.delegate, bob, []chatapi.Scope{chatapi.ScopeMessagesReadonly}},
	}
	before := countMints(e.emu.Mints())
	b, err := e.startBroker("")
	if err != nil {
		return err
	}
	defer b.stop()

	n := e.cfg.Herd
	client := newClient(n)
	defer client.CloseIdleConnections()
	// One bearer a call: once's i picks it whatever i is.
	res := fireAtOnce(ctx, client, n, func(i int) Call {
		k := kinds[i%len(kinds)]
		c := Call{Method: k.op.method, URL: "http://" + b.proxy + k.op.path, Body: k.op.body, Bearers: []string{k.bearer}}
		if k.subject != "" {
			c.Header = http.Header{"X-Chat-Broker-Subject": {k.subject}}
		}
		return c
	})
	h := &ColdHerd{Calls: n, WallMS: ms(res.Elapsed), OK: res.Requests, Errors: res.Errors, First: res.FirstErr}
	h.P50, h.P99, h.Max = us(res.Percentile(0.5)), us(res.Percentile(0.99)), us(res.Percentile(1))

	after := countMints(e.emu.Mints())
	calls := map[string]int{}
	var order []string
	for i := range n {
		k := kinds[i%len(kinds)]
		key := mintKey(k.subject, k.scopes)
		if calls[key] == 0 {
			order = append(order, key)
			h.Keys = append(h.Keys, HerdKey{Subject: k.subject, Scopes: chatapi.ScopeKey(k.scopes)})
		}
		calls[key]++
	}
	for i, key := range order {
		h.Keys[i].Calls = calls[key]
		h.Keys[i].Mints = after[key] - before[key]
	}
	for key, v := range after {
		if calls[key] == 0 && v > before[key] {
			h.Unknown += v - before[key]
		}
	}
	r.ColdHerd = h
	if h.OK == 0 {
		return fmt.Errorf("no call of the herd succeeded: %s", h.First)
	}
	return nil
}
