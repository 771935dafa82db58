package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chat-broker/chat-broker/proxy"
)

// An admin has not approved chat.app.messages.readonly: the list gets
// Chat's 403 with a hint, /approvals and /metrics say not_approved; the
// admin approves (through the emulator's control API), the next list
// succeeds, and both views say approved.
func TestApprovalsView(t *testing.T) {
	secret := "reader-secret-0123456789abcdefgh"
	listen, admin, _, emuURL := serveOneCaller(t, "reader", secret, "spaces.messages.list", "chat.app.messages.readonly, chat.app.spaces")

	list := func() (int, string) {
		req, _ := http.NewRequest("GET", "http://"+listen+"/v1/spaces/AAAA/messages", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(proxy.HintHeader)
	}
	check := func(wantState proxy.ApprovalState) {
		t.Helper()
		var view struct{ Scopes []proxy.Approval }
		getJSON(t, "http://"+admin+"/approvals", &view)
		states := map[string]proxy.ApprovalState{}
		for _, a := range view.Scopes {
			states[string(a.Scope)] = a.State
		}
		if states["chat.app.messages.readonly"] != wantState || states["chat.app.spaces"] != proxy.ApprovalUnknown || len(states) != 2 {
			t.Errorf("/approvals = %+v, want chat.app.messages.readonly %s and chat.app.spaces unknown", view.Scopes, wantState)
		}
		metric := scrape(t, "http://"+admin+"/metrics", "chat_broker_app_scope_approval")
		for _, st := range []proxy.ApprovalState{proxy.ApprovalUnknown, proxy.Approved, proxy.NotApproved} {
			want := 0.0
			if st == wantState {
				want = 1
			}
			if got, ok := metric["chat.app.messages.readonly/"+string(st)]; !ok || got != want {
				t.Errorf("metric state=%s = %v (present %v), want %v", st, got, ok, want)
			}
		}
	}

	check(proxy.ApprovalUnknown)
	status, hint := list()
	if status != 403 || !strings.Contains(hint, "chat.app.messages.readonly") {
		t.Fatalf("list before approval: %d hint %q, want 403 with a hint", status, hint)
	}
	check(proxy.NotApproved)

	resp, err := http.Post(emuURL+"/emulator/approvals", "application/json", strings.NewReader(`{"scope":"chat.app.messages.readonly","approved":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if status, _ := list(); status != 200 {
		t.Fatalf("list after approval: %d, want 200", status)
	}
	check(proxy.Approved)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// scrape parses /metrics with Prometheus' own text parser and returns the
// named family's values keyed by "scope/state".
func scrape(t *testing.T, url, name string) map[string]float64 {
	t.Helper()
	_, body := fetch(t, url)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	fam, ok := families[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		out[labels["scope"]+"/"+labels["state"]] = m.GetGauge().GetValue()
	}
	return out
}
