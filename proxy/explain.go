package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/inbound"
	"github.com/chat-broker/chat-broker/internal/refusal"
	"github.com/chat-broker/chat-broker/policy"
)

// Explanation is what the proxy would do with one request from one
// caller, without sending anything: `chat-broker policy explain`.
type Explanation struct {
	Caller string `json:"caller"`
	// Method is the catalog id, or "" when the request names no method.
	Method string `json:"method"`
	Space  string `json:"space,omitempty"`
	// Subject is the user the token would act as; "" for the app itself.
	Subject string `json:"subject,omitempty"`
	// Decision is "allow" or "deny".
	Decision string `json:"decision"`
	// Rule is the policy rule that allowed the call, or for a deny the
	// rule or field to change.
	Rule string `json:"rule"`
	// Reason is "" on allow, else the ErrorInfo reason the caller would get.
	Reason string `json:"reason"`
	// Message is the refusal's explanation; "" on allow.
	Message string `json:"message,omitempty"`
	// Status is the HTTP status the broker would answer before forwarding
	// (403, 404, …); 0 when the call would be forwarded.
	Status int `json:"status,omitempty"`
	// Scopes is the scope set the token would carry.
	Scopes []chatapi.Scope `json:"scopes"`
}

// Explain says what the proxy would do with request, given as
// "VERB /path?query", from caller as subject ("" for the app itself). It
// runs the proxy's own target, query and policy checks.
func Explain(pol *policy.Policy, caller, request, subject string) (Explanation, error) {
	c, ok := pol.CallerByName(caller)
	if !ok {
		names := make([]string, 0, len(pol.Callers()))
		for _, c := range pol.Callers() {
			names = append(names, c.Name)
		}
		return Explanation{}, fmt.Errorf("proxy: explain: no caller %q in %s; callers: %s", caller, pol.File(), strings.Join(names, ", "))
	}
	verb, target, ok := strings.Cut(strings.TrimSpace(request), " ")
	target = strings.TrimSpace(target)
	if !ok || verb == "" || !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \t") {
		return Explanation{}, fmt.Errorf(`proxy: explain: request %q: want "VERB /path", e.g. "POST /v1/spaces/AAAA/messages"`, request)
	}
	r, err := http.NewRequest(strings.ToUpper(verb), "http://chat-broker"+target, nil)
	if err != nil {
		return Explanation{}, fmt.Errorf("proxy: explain: request %q: %w", request, err)
	}
	r.RequestURI = target

	e := Explanation{Caller: c.Name, Subject: subject, Decision: "deny", Scopes: []chatapi.Scope{}}
	cl := &call{}
	path, err := inbound.CheckTarget(r)
	var d policy.Decision
	if err == nil {
		_, d, err = resolve(chatapi.NewRouter(), pol, c, r, path, subject, cl)
	}
	e.Method, e.Space, e.Rule = cl.method, cl.space, d.Rule
	var ref *refusal.Error
	if errors.As(err, &ref) {
		e.Reason, e.Message, e.Status = ref.Reason, ref.Message, ref.Code
		return e, nil
	}
	if err != nil {
		return Explanation{}, err
	}
	if cl.readFilter {
		e.Reason, e.Status = policy.ReasonSpaceNotAllowed, http.StatusForbidden
		e.Message = fmt.Sprintf(`caller %q may search messages only in the spaces its rules name: the broker allows this search when the filter in its body limits it with space.name = "spaces/ID" terms (joined by OR, ANDed with the rest) naming allowed spaces, and refuses it otherwise`, c.Name)
		return e, nil
	}
	e.Decision, e.Subject = "allow", d.Subject
	e.Scopes = append(e.Scopes, d.Scopes...)
	return e, nil
}
