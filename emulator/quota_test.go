package emulator_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

// Each quota lets through its count per minute and answers the rest 429
// with Chat's quota error, without Retry-After; the next minute starts
// afresh.
func TestQuotas(t *testing.T) {
	const post, get = "/v1/spaces/AAAA/messages", "/v1/spaces/AAAA"
	tests := []struct {
		name      string
		quotas    emulator.Quotas
		path      string // POST a message, or GET the space
		other     string // a call that must not count against it
		limit     int
		wantLimit string
	}{
		{"project message writes", emulator.Quotas{Project: map[chatapi.QuotaClass]int{chatapi.QuotaMessageWrites: 3}},
			post, get, 3, "Write requests per minute per project"},
		{"project space reads", emulator.Quotas{Project: map[chatapi.QuotaClass]int{chatapi.QuotaSpaceReads: 2}},
			get, post, 2, "Read requests per minute per project"},
		{"per-space writes", emulator.Quotas{SpaceWrites: 4}, post, get, 4, "Write requests per minute per space"},
		{"per-space reads", emulator.Quotas{SpaceReads: 2}, get, post, 2, "Read requests per minute per space"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			clk.Advance(time.Until(clk.Now().Truncate(time.Minute).Add(time.Minute)) + time.Second) // the start of a minute
			v := newEnv(t, emulator.Config{Spaces: []string{space, "spaces/BBBB"}, Now: clk.Now, Quotas: tc.quotas})
			tok := v.token(t, "", chatapi.ScopeBot)
			call := func(path string) (int, http.Header, []byte) {
				if strings.HasSuffix(path, "/messages") {
					return v.do(t, "POST", path, tok, "application/json", `{"text":"hi"}`)
				}
				return v.do(t, "GET", path, tok, "", "")
			}
			for i := range tc.limit {
				if status, _, b := call(tc.path); status != 200 {
					t.Fatalf("call %d of %d: %d %s", i+1, tc.limit, status, b)
				}
			}
			status, h, b := call(tc.path)
			if status != http.StatusTooManyRequests {
				t.Fatalf("call past the quota: %d %s", status, b)
			}
			var body struct{ Error chatapi.Error }
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatal(err)
			}
			info, _ := body.Error.Info()
			if body.Error.Status != "RESOURCE_EXHAUSTED" || info.Reason != "RATE_LIMIT_EXCEEDED" || info.Metadata["quota_limit"] != tc.wantLimit ||
				!strings.HasPrefix(body.Error.Message, "Quota exceeded for quota metric") {
				t.Errorf("429 body: %s", b)
			}
			if h.Get("Retry-After") != "" || strings.Contains(string(b), "RetryInfo") {
				t.Errorf("Chat's quota 429 carries no Retry-After or RetryInfo: %v %s", h, b)
			}
			if status, _, b := call(tc.other); status != 200 {
				t.Errorf("a call of another quota: %d %s", status, b)
			}
			if tc.quotas.SpaceWrites+tc.quotas.SpaceReads > 0 {
				other := strings.Replace(tc.path, "AAAA", "BBBB", 1)
				if status, _, b := call(other); status != 200 {
					t.Errorf("another space: %d %s", status, b)
				}
			}
			if got := v.emu.QuotaExceeded(); got != 1 {
				t.Errorf("QuotaExceeded %d, want 1", got)
			}
			clk.Advance(time.Minute)
			if status, _, b := call(tc.path); status != 200 {
				t.Errorf("next minute: %d %s", status, b)
			}
		})
	}
}

// The control API sets, shows and clears the quotas, and refuses a bad
// one.
func TestQuotasControl(t *testing.T) {
	clk := newClock()
	v := newEnv(t, emulator.Config{Spaces: []string{space}, Now: clk.Now})
	tok := v.token(t, "", chatapi.ScopeBot)
	status, out := v.admin(t, "POST", "/emulator/quotas", `{"project":{"message-writes":1},"spaceReads":5}`)
	if status != 200 || out["quotas"].(map[string]any)["spaceReads"] != 5.0 {
		t.Fatalf("POST: %d %v", status, out)
	}
	for i, want := range []int{200, 429} {
		if got, _, b := v.do(t, "POST", "/v1/spaces/AAAA/messages", tok, "application/json", `{"text":"hi"}`); got != want {
			t.Fatalf("message %d: %d %s, want %d", i+1, got, b, want)
		}
	}
	_, out = v.admin(t, "GET", "/emulator/quotas", "")
	if out["exceeded"] != 1.0 || out["used"].(map[string]any)["project:message-writes"] != 1.0 {
		t.Errorf("GET: %v", out)
	}
	for _, bad := range []string{`{"project":{"message-writez":1}}`, `{"spaceWrites":-1}`, `{"nope":1}`} {
		if status, out := v.admin(t, "POST", "/emulator/quotas", bad); status != 400 {
			t.Errorf("POST %s: %d %v, want 400", bad, status, out)
		}
	}
	if status, _ := v.admin(t, "DELETE", "/emulator/quotas", ""); status != 200 {
		t.Fatalf("DELETE: %d", status)
	}
	if got, _, b := v.do(t, "POST", "/v1/spaces/AAAA/messages", tok, "application/json", `{"text":"hi"}`); got != 200 {
		t.Errorf("after DELETE: %d %s", got, b)
	}
}

func TestParseQuotas(t *testing.T) {
	tests := []struct {
		in      string
		want    emulator.Quotas
		wantErr string
	}{
		{"", emulator.Quotas{Project: map[chatapi.QuotaClass]int{}}, ""},
		{"message-writes=3000, per-space-writes=60,per-space-reads=900",
			emulator.Quotas{Project: map[chatapi.QuotaClass]int{chatapi.QuotaMessageWrites: 3000}, SpaceWrites: 60, SpaceReads: 900}, ""},
		{"message-writez=1", emulator.Quotas{}, "no such quota class"},
		{"message-writes", emulator.Quotas{}, "want NAME=requests per minute"},
		{"message-writes=-1", emulator.Quotas{}, "want NAME=requests per minute"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := emulator.ParseQuotas(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.SpaceWrites != tc.want.SpaceWrites || got.SpaceReads != tc.want.SpaceReads || len(got.Project) != len(tc.want.Project) ||
				got.Project[chatapi.QuotaMessageWrites] != tc.want.Project[chatapi.QuotaMessageWrites] {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
