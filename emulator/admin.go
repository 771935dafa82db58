package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// adminPrefix is where the control API lives. Nothing of Google's is
// under it, and the broker forwards only catalog paths, so a caller
// going through a broker cannot reach it.
const adminPrefix = "/emulator/"

// maxAdminBody caps a control request; each is a small JSON object.
const maxAdminBody = 64 << 10

// adminHandler serves one verb of one control endpoint. It returns the
// JSON answer or a Google-shaped error.
type adminHandler func(e *Emulator, r *http.Request) (any, *chatapi.Error)

// adminRoutes maps path → verb → handler.
var adminRoutes = map[string]map[string]adminHandler{
	"/emulator/approvals":      adminEndpoint((*Emulator).adminGetApprovals, decoded((*Emulator).postApproval), nil),
	"/emulator/delegation":     adminEndpoint((*Emulator).adminGetDelegation, decoded((*Emulator).postDelegation), nil),
	"/emulator/faults":         adminEndpoint((*Emulator).adminGetFaults, decoded((*Emulator).postFault), (*Emulator).ClearFaults),
	"/emulator/token-endpoint": adminEndpoint((*Emulator).adminGetTokenEndpoint, decoded((*Emulator).postTokenEndpoint), nil),
	"/emulator/token-error":    adminEndpoint((*Emulator).adminGetTokenError, decoded((*Emulator).postTokenError), nil),
	"/emulator/counters":       adminEndpoint((*Emulator).adminGetCounters, nil, (*Emulator).ResetCounters),
	"/emulator/seed":           adminEndpoint((*Emulator).adminGetSeed, decoded((*Emulator).postSeed), nil),
	"/emulator/token-lifetime": adminEndpoint((*Emulator).adminGetTokenLifetime, decoded((*Emulator).postTokenLifetime), nil),
	"/emulator/requests":       adminEndpoint((*Emulator).adminGetRequests, nil, (*Emulator).ResetRequests),
	"/emulator/mints":          adminEndpoint((*Emulator).adminGetMints, nil, nil),
	// POST answers with the space it added, not the list.
	"/emulator/spaces": {
		http.MethodGet:  (*Emulator).adminGetSpaces,
		http.MethodPost: (*Emulator).adminPostSpace,
	},
}

// serveAdmin serves the control API: JSON in and out, errors in Google's
// shape. Control requests are not Chat requests and are not in Requests.
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	verbs, ok := adminRoutes[strings.TrimSuffix(r.URL.Path, "/")]
	if !ok {
		chatapi.NewError(http.StatusNotFound, fmt.Sprintf("chat-broker emulator: no control endpoint %s", r.URL.Path)).Write(w)
		return
	}
	h, ok := verbs[r.Method]
	if !ok {
		var allow []string
		for v := range verbs {
			allow = append(allow, v)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		chatapi.NewError(http.StatusMethodNotAllowed, fmt.Sprintf("chat-broker emulator: %s takes %s", r.URL.Path, strings.Join(allow, ", "))).Write(w)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
	out, err := h(e, r)
	if err != nil {
		e.log.Info("emulator: control request refused", "verb", r.Method, "path", r.URL.Path, "status", err.Code)
		err.Write(w)
		return
	}
	e.log.Info("emulator: control request", "verb", r.Method, "path", r.URL.Path)
	writeJSON(w, http.StatusOK, out)
}

// decodeAdmin reads a control request's JSON object into v, refusing
// unknown fields so that a typo is not silently ignored.
func decodeAdmin(r *http.Request, v any) *chatapi.Error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return chatapi.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("chat-broker emulator: request body exceeds %d bytes", tooBig.Limit))
		}
		if errors.Is(err, io.EOF) {
			return invalidArgument("chat-broker emulator: the request needs a JSON object body")
		}
		return invalidArgument("chat-broker emulator: invalid JSON body: " + err.Error())
	}
	if dec.More() {
		return invalidArgument("chat-broker emulator: the body must hold one JSON object")
	}
	return nil
}

// adminEndpoint is a control endpoint whose GET answers get. POST, where
// post is set, changes what the body asks and DELETE, where clear is
// set, clears; both then answer as GET does.
func adminEndpoint(get adminHandler, post func(*Emulator, *http.Request) *chatapi.Error, clear func(*Emulator)) map[string]adminHandler {
	verbs := map[string]adminHandler{http.MethodGet: get}
	if post != nil {
		verbs[http.MethodPost] = func(e *Emulator, r *http.Request) (any, *chatapi.Error) {
			if err := post(e, r); err != nil {
				return nil, err
			}
			return get(e, r)
		}
	}
	if clear != nil {
		verbs[http.MethodDelete] = func(e *Emulator, r *http.Request) (any, *chatapi.Error) {
			clear(e)
			return get(e, r)
		}
	}
	return verbs
}

// decoded is a change that decodes the body into an In and has apply
// check and apply it.
func decoded[In any](apply func(*Emulator, *In) *chatapi.Error) func(*Emulator, *http.Request) *chatapi.Error {
	return func(e *Emulator, r *http.Request) *chatapi.Error {
		var in In
		if err := decodeAdmin(r, &in); err != nil {
			return err
		}
		return apply(e, &in)
	}
}

func missing(field string) *chatapi.Error {
	return invalidArgument(fmt.Sprintf("chat-broker emulator: %q is required", field))
}

// Approvals.

type approvalsOut struct {
	Approved []string `json:"approved"`
}

func (e *Emulator) adminGetApprovals(*http.Request) (any, *chatapi.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := approvalsOut{Approved: []string{}}
	for s, ok := range e.approved {
		if ok {
			out.Approved = append(out.Approved, string(s))
		}
	}
	slices.Sort(out.Approved)
	return out, nil
}

type approvalIn struct {
	Scope    string `json:"scope"`
	Approved *bool  `json:"approved"`
}

func (e *Emulator) postApproval(in *approvalIn) *chatapi.Error {
	if in.Approved == nil {
		return missing("approved")
	}
	s, ok := chatapi.ParseScope(in.Scope)
	if !ok || !s.IsApp() {
		return invalidArgument(fmt.Sprintf("chat-broker emulator: %q is not a chat.app.* scope (e.g. chat.app.spaces.create)", in.Scope))
	}
	e.Approve(s, *in.Approved)
	return nil
}

// Delegation.

type delegationOut struct {
	// AllUsers: every user may be a sub; otherwise only Users may.
	AllUsers bool     `json:"allUsers"`
	Users    []string `json:"users"`
}

func (e *Emulator) adminGetDelegation(*http.Request) (any, *chatapi.Error) {
	all, users := e.delegationState()
	if users == nil {
		users = []string{}
	}
	return delegationOut{AllUsers: all, Users: users}, nil
}

type delegationIn struct {
	User    string `json:"user"`
	Enabled *bool  `json:"enabled"`
}

func (e *Emulator) postDelegation(in *delegationIn) *chatapi.Error {
	if in.Enabled == nil {
		return missing("enabled")
	}
	switch {
	case in.User == "":
		e.SetDelegation(*in.Enabled)
	case !validEmail(in.User):
		return invalidArgument(fmt.Sprintf("chat-broker emulator: user %q is not an email", in.User))
	default:
		e.SetUserDelegation(in.User, *in.Enabled)
	}
	return nil
}

// Spaces.

type spaceOut struct {
	Name        string `json:"name"`
	AppIsMember bool   `json:"appIsMember"`
}

func (e *Emulator) adminGetSpaces(*http.Request) (any, *chatapi.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := struct {
		Spaces []spaceOut `json:"spaces"`
	}{Spaces: []spaceOut{}}
	for _, sp := range e.sortedSpacesLocked() {
		out.Spaces = append(out.Spaces, spaceOut{sp.name, sp.appMember})
	}
	return out, nil
}

func (e *Emulator) adminPostSpace(r *http.Request) (any, *chatapi.Error) {
	var in struct {
		Name        string `json:"name"`
		AppIsMember *bool  `json:"appIsMember"`
	}
	if err := decodeAdmin(r, &in); err != nil {
		return nil, err
	}
	if in.AppIsMember == nil {
		return nil, missing("appIsMember")
	}
	name := in.Name
	if !strings.HasPrefix(name, "spaces/") {
		name = "spaces/" + name
	}
	if !validSpaceName(name) {
		return nil, invalidArgument(fmt.Sprintf(`chat-broker emulator: %q is not a space name like "spaces/AAAA"`, in.Name))
	}
	e.AddSpace(name, *in.AppIsMember)
	return spaceOut{name, *in.AppIsMember}, nil
}

// Faults.

type faultJSON struct {
	Method            string   `json:"method"`
	Status            int      `json:"status"`
	RetryAfterSeconds float64  `json:"retryAfterSeconds"`
	Times             int      `json:"times"`
	Fraction          float64  `json:"fraction,omitempty"`
	Reset             bool     `json:"reset,omitempty"`
	ResetAfterEffect  bool     `json:"resetAfterEffect,omitempty"`
	LatencyMs         float64  `json:"latencyMs,omitempty"`
	Spaces            []string `json:"spaces,omitempty"`
	// Left is how many more times the fault applies; 0 with Times 0
	// means every time. Output only.
	Left int `json:"left,omitempty"`
}

func (e *Emulator) adminGetFaults(*http.Request) (any, *chatapi.Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := struct {
		Faults []faultJSON `json:"faults"`
	}{Faults: []faultJSON{}}
	for _, f := range e.faults {
		out.Faults = append(out.Faults, faultJSON{
			Method:            f.Method,
			Status:            f.Status,
			RetryAfterSeconds: f.RetryAfter.Seconds(),
			Times:             f.Times,
			Fraction:          f.Fraction,
			Reset:             f.Reset,
			ResetAfterEffect:  f.ResetAfterEffect,
			LatencyMs:         float64(f.Latency) / float64(time.Millisecond),
			Spaces:            slices.Clone(f.Spaces),
			Left:              f.left,
		})
	}
	return out, nil
}

func (e *Emulator) postFault(in *faultJSON) *chatapi.Error {
	if in.RetryAfterSeconds < 0 || in.Times < 0 || in.LatencyMs < 0 || in.Left != 0 {
		return invalidArgument("chat-broker emulator: retryAfterSeconds, times and latencyMs must not be negative, and left is output only")
	}
	f, err := Fault{
		Method:           in.Method,
		Status:           in.Status,
		RetryAfter:       time.Duration(in.RetryAfterSeconds * float64(time.Second)),
		Times:            in.Times,
		Fraction:         in.Fraction,
		Reset:            in.Reset,
		ResetAfterEffect: in.ResetAfterEffect,
		Latency:          time.Duration(in.LatencyMs * float64(time.Millisecond)),
		Spaces:           in.Spaces,
	}.normalize()
	if err != nil {
		msg := "chat-broker emulator: " + err.Error()
		if strings.Contains(msg, "is no Chat method id") {
			msg += "; omit method to fail every method"
		}
		return invalidArgument(msg)
	}
	e.InjectFault(f)
	return nil
}

// Token endpoint.

type tokenEndpointJSON struct {
	Down *bool `json:"down"`
}

func (e *Emulator) adminGetTokenEndpoint(*http.Request) (any, *chatapi.Error) {
	e.mu.Lock()
	down := e.tokenDown
	e.mu.Unlock()
	return tokenEndpointJSON{&down}, nil
}

func (e *Emulator) postTokenEndpoint(in *tokenEndpointJSON) *chatapi.Error {
	if in.Down == nil {
		return missing("down")
	}
	e.SetTokenEndpointDown(*in.Down)
	return nil
}

type tokenErrorJSON struct {
	Status      *int   `json:"status"`
	Error       string `json:"error"`
	Description string `json:"description"`
}

func (e *Emulator) adminGetTokenError(*http.Request) (any, *chatapi.Error) {
	status, code, desc := e.tokenError()
	return tokenErrorJSON{&status, code, desc}, nil
}

func (e *Emulator) postTokenError(in *tokenErrorJSON) *chatapi.Error {
	if in.Status == nil {
		return missing("status")
	}
	if s := *in.Status; s != 0 && (s < 400 || s > 599) {
		return invalidArgument(fmt.Sprintf("chat-broker emulator: status %d is neither 0 (clear) nor 4xx or 5xx", s))
	}
	e.SetTokenError(*in.Status, in.Error, in.Description)
	return nil
}

type tokenLifetimeJSON struct {
	Seconds *float64 `json:"seconds"`
}

func (e *Emulator) adminGetTokenLifetime(*http.Request) (any, *chatapi.Error) {
	e.mu.Lock()
	secs := e.lifetime.Seconds()
	e.mu.Unlock()
	return tokenLifetimeJSON{&secs}, nil
}

func (e *Emulator) postTokenLifetime(in *tokenLifetimeJSON) *chatapi.Error {
	if in.Seconds == nil {
		return missing("seconds")
	}
	if *in.Seconds < 0 {
		return invalidArgument("chat-broker emulator: seconds must not be negative; 0 means one hour")
	}
	e.SetTokenLifetime(time.Duration(*in.Seconds * float64(time.Second)))
	return nil
}

// Logs.

// requestJSON is a Request without the Authorization header, which holds
// a live bearer token.
type requestJSON struct {
	Time     string   `json:"time"`
	MethodID string   `json:"methodId"`
	Verb     string   `json:"verb"`
	Path     string   `json:"path"`
	Query    string   `json:"query,omitempty"`
	Scopes   []string `json:"scopes"`
	Subject  string   `json:"subject,omitempty"`
	Status   int      `json:"status"`
}

// credentialParams are query parameters Google reads as credentials.
var credentialParams = []string{"access_token", "oauth_token", "key"}

// redactQuery replaces the values of credential parameters in a raw
// query with REDACTED, keeping the rest as sent.
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err == nil && slices.Contains(credentialParams, name) {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

func scopeStrings(scopes []chatapi.Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

func (e *Emulator) adminGetRequests(*http.Request) (any, *chatapi.Error) {
	reqs := e.Requests()
	out := struct {
		Requests []requestJSON `json:"requests"`
	}{Requests: make([]requestJSON, len(reqs))}
	for i, r := range reqs {
		out.Requests[i] = requestJSON{
			Time:     timestamp(r.Time),
			MethodID: r.MethodID,
			Verb:     r.Verb,
			Path:     r.Path,
			Query:    redactQuery(r.RawQuery),
			Scopes:   scopeStrings(r.Scopes),
			Subject:  r.Subject,
			Status:   r.Status,
		}
	}
	return out, nil
}

func (e *Emulator) adminGetMints(*http.Request) (any, *chatapi.Error) {
	type mintJSON struct {
		Time     string   `json:"time"`
		Scopes   []string `json:"scopes"`
		Subject  string   `json:"subject,omitempty"`
		Audience string   `json:"audience"`
		Via      string   `json:"via"`
	}
	mints := e.Mints()
	out := struct {
		Mints []mintJSON `json:"mints"`
	}{Mints: make([]mintJSON, len(mints))}
	for i, m := range mints {
		out.Mints[i] = mintJSON{timestamp(m.Time), scopeStrings(m.Scopes), m.Subject, m.Audience, m.Via}
	}
	return out, nil
}

// Counters and the random seed.

func (e *Emulator) adminGetCounters(*http.Request) (any, *chatapi.Error) {
	return e.Counters(), nil
}

type seedJSON struct {
	Seed *int64 `json:"seed"`
}

func (e *Emulator) adminGetSeed(*http.Request) (any, *chatapi.Error) {
	seed := e.Seed()
	return seedJSON{&seed}, nil
}

func (e *Emulator) postSeed(in *seedJSON) *chatapi.Error {
	if in.Seed == nil {
		return missing("seed")
	}
	e.SetSeed(*in.Seed)
	return nil
}
