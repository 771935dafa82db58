package emulator

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/felixge/httpsnoop"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/chatapi/discovery"
)

const realm = `Bearer realm="https://accounts.google.com/"`

// Chat's answers that chatapi has no constant for.
const (
	msgNotFound       = "Requested entity was not found."
	msgMethodNotFound = "Method not found."
	msgNoPermission   = "The caller does not have permission"
	// Chat's answer to a delegated (sub) token that carries chat.bot
	// (googleapis/google-api-python-client#1590, #1608).
	msgNoServiceAccount = "The API is called without service account credentials. Instructions on how to set this up can be found at https://developers.google.com/hangouts/chat/how-tos/service-accounts"
)

// handlers are the catalog methods the emulator implements. Every other
// method is answered 501 after authentication and scope checks.
var handlers = map[string]func(*call) (any, *chatapi.Error){
	"spaces.get":              (*call).getSpace,
	"spaces.list":             (*call).listSpaces,
	"spaces.create":           (*call).createSpace,
	"spaces.members.get":      (*call).getMember,
	"spaces.members.list":     (*call).listMembers,
	"spaces.messages.create":  (*call).createMessage,
	"spaces.messages.get":     (*call).getMessage,
	"spaces.messages.list":    (*call).listMessages,
	"spaces.messages.patch":   (*call).updateMessage,
	"spaces.messages.update":  (*call).updateMessage,
	"spaces.messages.delete":  (*call).deleteMessage,
	"spaces.setup":            (*call).setupSpace,
	"spaces.members.create":   (*call).createMember,
	"spaces.members.delete":   (*call).deleteMember,
	"spaces.members.patch":    (*call).patchMember,
	"spaces.spaceEvents.get":  (*call).getSpaceEvent,
	"spaces.spaceEvents.list": (*call).listSpaceEvents,
	"spaces.messages.search":  (*call).searchMessages,
	"media.upload":            (*call).uploadMedia,

	"spaces.messages.reactions.create": (*call).createReaction,
	"spaces.messages.reactions.list":   (*call).listReactions,
	"spaces.messages.reactions.delete": (*call).deleteReaction,
}

// call is one authorized Chat API request.
type call struct {
	e    *Emulator
	w    http.ResponseWriter
	r    *http.Request
	m    *chatapi.Method
	d    *discovery.Method // m as Google's discovery document states it
	vars map[string]string
	q    url.Values
	tok  *token
	meta map[string]string // ErrorInfo metadata: service and method
	// viaApp: authorized by an approved chat.app.* scope, which acts
	// across the organization, so membership is not required.
	viaApp bool
	// admin: user authentication with useAdminAccess=true and an admin scope.
	admin bool
}

// identity is the user name the caller acts as.
func (c *call) identity() string {
	if c.tok.subject != "" {
		return "users/" + c.tok.subject
	}
	return appUser
}

// exchange is one Chat API request and its answer. The request is logged
// once, when the status is known: by w as the answer starts, or by
// dropConnection for a reset. Logging it before any of the answer is
// sent means a client holding a response always finds its request in the
// log.
type exchange struct {
	w      http.ResponseWriter // the client's, wrapped by watchStatus
	req    Request
	logged bool
	// handled: handleChat has already dealt with the answer (sent it, or
	// dropped the connection for a Reset fault); nothing more is written.
	handled bool
}

// logStatus logs the request with status, the first time it is called.
func (x *exchange) logStatus(e *Emulator, status int) {
	if x.logged {
		return
	}
	x.logged = true
	x.req.Status = status
	e.record(x.req)
}

// watchStatus wraps w so that onStatus runs once, with the answer's
// status, before any of the answer is sent: at the first WriteHeader, or
// with 200 at a Write, ReadFrom or Flush that comes first. Later
// WriteHeader calls are dropped. The wrapped writer has the optional
// interfaces w has (http.Flusher, http.Hijacker, …) and Unwrap, so
// http.ResponseController reaches w.
func watchStatus(w http.ResponseWriter, onStatus func(code int)) http.ResponseWriter {
	sent := false
	writeHeader := func(code int) {
		if sent {
			return
		}
		sent = true
		onStatus(code)
		w.WriteHeader(code)
	}
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc { return writeHeader },
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				writeHeader(http.StatusOK)
				return next(b)
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				writeHeader(http.StatusOK)
				return next(src)
			}
		},
		Flush: func(next httpsnoop.FlushFunc) httpsnoop.FlushFunc {
			return func() {
				writeHeader(http.StatusOK)
				next()
			}
		},
	})
}

func (e *Emulator) serveChat(w http.ResponseWriter, r *http.Request) {
	x := &exchange{req: Request{
		Time:            e.now(),
		Verb:            r.Method,
		Path:            r.URL.Path,
		RawQuery:        r.URL.RawQuery,
		Authorization:   r.Header.Get("Authorization"),
		ContentEncoding: r.Header.Get("Content-Encoding"),
	}}
	x.w = watchStatus(w, func(code int) { x.logStatus(e, code) })
	body, err := e.handleChat(x, r)
	if x.handled {
		return
	}
	if err != nil {
		err.Write(x.w)
		return
	}
	if raw, ok := body.(rawAnswer); ok {
		if raw.body == nil {
			x.w.Header().Set("Content-Length", "0")
			x.w.WriteHeader(raw.status)
			return
		}
		writeJSON(x.w, raw.status, raw.body)
		return
	}
	writeJSON(x.w, http.StatusOK, body)
}

func (e *Emulator) handleChat(x *exchange, r *http.Request) (any, *chatapi.Error) {
	mr := r
	if isContinuation(r) {
		mr = r.Clone(r.Context())
		mr.Method = http.MethodPost
	}
	m, vars, rerr := e.router.Match(mr)
	switch {
	case errors.Is(rerr, chatapi.ErrVerbNotAllowed):
		x.w.Header().Set("Allow", strings.Join(e.allowed(r), ", "))
		return nil, chatapi.NewError(http.StatusMethodNotAllowed, "Method not allowed.")
	case rerr != nil:
		return nil, chatapi.NewError(http.StatusNotFound, msgMethodNotFound)
	}
	x.req.MethodID = m.ID
	meta := map[string]string{"service": "chat.googleapis.com", "method": "google.chat.v1.ChatService." + m.RPC}

	tok, aerr := e.authenticate(x.w, r, meta)
	if aerr != nil {
		return nil, aerr
	}
	x.req.Scopes, x.req.Subject = tok.scopes, tok.subject
	d, ok := discovery.Lookup(m.ID)
	if !ok { // the catalog is built from the document; cannot happen
		return nil, chatapi.NewError(http.StatusNotFound, msgMethodNotFound)
	}
	c := &call{e: e, w: x.w, r: r, m: m, d: d, vars: vars, q: r.URL.Query(), tok: tok, meta: meta}
	if err := c.authorize(meta); err != nil {
		return nil, err
	}
	if err := c.checkSpace(); err != nil {
		return nil, err
	}
	if err := e.checkQuota(m, m.Space(vars)); err != nil {
		return nil, err
	}
	h := handlers[m.ID]
	plan := e.planFaults(m, m.Space(vars))
	if plan.latency > 0 || (plan.hit != nil && plan.hit.Reset) {
		readAhead(r, m)
	}
	if plan.latency > 0 {
		e.log.Info("emulator: injected latency", "method", m.ID, "latency", plan.latency)
		if err := wait(r.Context(), plan.latency); err != nil {
			// Logged (and counted) before the log line below, which
			// tests wait for.
			chatapi.NewError(499, msgCancelled).Write(x.w)
			x.handled = true
			e.log.Info("emulator: request abandoned during injected latency", "method", m.ID, "error", err)
			return nil, nil
		}
	}
	if f := plan.hit; f != nil {
		if f.Reset {
			if f.ResetAfterEffect && h != nil {
				h(c) // the call takes effect; its answer is lost
			}
			e.dropConnection(x)
			return nil, nil
		}
		e.mu.Lock()
		e.counters.InjectedFaults++
		e.mu.Unlock()
		return nil, e.faultError(x.w, m, f)
	}
	if h == nil {
		return nil, chatapi.NewError(http.StatusNotImplemented, "chat-broker emulator: "+m.ID+" is not implemented")
	}
	return h(c)
}

// allowed lists the verbs the request's path takes, for the Allow header.
func (e *Emulator) allowed(r *http.Request) []string {
	var verbs []string
	for _, v := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		r2 := r.Clone(r.Context())
		r2.Method = v
		if _, _, err := e.router.Match(r2); err == nil {
			verbs = append(verbs, v)
		}
	}
	return verbs
}

// authenticate finds the token the request presents: a Bearer
// Authorization header or, as Google also accepts, an access_token or
// oauth_token query parameter.
func (e *Emulator) authenticate(w http.ResponseWriter, r *http.Request, meta map[string]string) (*token, *chatapi.Error) {
	invalid := func() *chatapi.Error {
		w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token"`)
		return chatapi.NewError(http.StatusUnauthorized, chatapi.MsgCredentialsInvalid)
	}
	var bearer string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, v, _ := strings.Cut(h, " ")
		bearer = strings.TrimSpace(v)
		if !strings.EqualFold(scheme, "Bearer") || bearer == "" {
			return nil, invalid()
		}
	} else {
		// Google accepts a token in the query as well; so must the
		// emulator, or a proxy that forgot to strip it would go unnoticed.
		q := r.URL.Query()
		bearer = q.Get("access_token")
		if bearer == "" {
			bearer = q.Get("oauth_token")
		}
	}
	if bearer == "" {
		w.Header().Set("WWW-Authenticate", realm)
		return nil, chatapi.NewError(http.StatusUnauthorized, chatapi.MsgCredentialsMissing).
			WithInfo(chatapi.DomainGoogle, "CREDENTIALS_MISSING", meta)
	}
	now := e.now()
	e.mu.Lock()
	tok := e.tokens[bearer]
	e.mu.Unlock()
	if tok == nil {
		return nil, invalid()
	}
	if !now.Before(tok.expiry) {
		return nil, invalid().WithInfo(chatapi.DomainGoogle, "ACCESS_TOKEN_EXPIRED", meta)
	}
	return tok, nil
}

// authorize checks the token's scopes against the method's, as Chat does,
// taking the scopes a method accepts from Google's discovery document,
// never from the broker's catalog: a delegated token needs one of its
// user scopes (chat.admin.* ones with useAdminAccess=true) and must not
// carry chat.bot; an app token needs chat.bot or a chat.app.* scope an
// administrator approved.
func (c *call) authorize(meta map[string]string) *chatapi.Error {
	tok := c.tok
	var app, user, admin []chatapi.Scope
	for _, s := range c.d.Scopes {
		switch sc := chatapi.Scope(s); {
		case sc == chatapi.ScopeBot || sc.IsApp():
			app = append(app, sc)
		case sc.IsAdmin():
			admin = append(admin, sc)
		default:
			user = append(user, sc)
		}
	}
	if tok.subject != "" {
		if slices.Contains(tok.scopes, chatapi.ScopeBot) {
			return chatapi.NewError(http.StatusForbidden, msgNoServiceAccount)
		}
		accepted := user
		if c.q.Get("useAdminAccess") == "true" {
			accepted, c.admin = admin, true
		}
		if !hasAny(tok.scopes, accepted) {
			return c.insufficient(meta)
		}
		return nil
	}
	if len(app) == 0 {
		return chatapi.NewError(http.StatusForbidden, chatapi.MsgUserAuthOnly)
	}
	bot, viaApp, unapproved := false, false, false
	c.e.mu.Lock()
	for _, s := range app {
		switch {
		case !slices.Contains(tok.scopes, s):
		case s == chatapi.ScopeBot:
			bot = true
		case c.e.approved[s]:
			viaApp = true
		default:
			unapproved = true
		}
	}
	c.e.mu.Unlock()
	switch {
	case bot || viaApp:
		c.viaApp = viaApp
		return nil
	case unapproved:
		return chatapi.NewError(http.StatusForbidden, chatapi.MsgAdminApproval)
	}
	return c.insufficient(meta)
}

// insufficient is the 403 for a token that has none of the method's
// scopes. Like Google, it lists every scope the method accepts.
func (c *call) insufficient(meta map[string]string) *chatapi.Error {
	urls := make([]string, len(c.d.Scopes))
	for i, s := range c.d.Scopes {
		urls[i] = chatapi.Scope(s).URL()
	}
	c.w.Header().Set("WWW-Authenticate", realm+`, error="insufficient_scope", scope="`+strings.Join(urls, " ")+`"`)
	return chatapi.NewError(http.StatusForbidden, chatapi.MsgInsufficientScopes).
		WithInfo(chatapi.DomainGoogle, "ACCESS_TOKEN_SCOPE_INSUFFICIENT", meta)
}

// checkSpace answers 404 for a space that does not exist and, for the app
// authorized through chat.bot, 403 for a space it is not a member of.
func (c *call) checkSpace() *chatapi.Error {
	name := c.m.Space(c.vars)
	if name == "" || name == "spaces/-" { // "-": every space, for the handler to judge
		return nil
	}
	c.e.mu.Lock()
	sp := c.e.spaces[name]
	member := sp != nil && sp.appMember
	c.e.mu.Unlock()
	switch {
	case sp == nil:
		return notFound()
	case c.tok.subject == "" && !c.viaApp && !member:
		return chatapi.NewError(http.StatusForbidden, chatapi.MsgNotPermitted)
	}
	return nil
}

func notFound() *chatapi.Error { return chatapi.NewError(http.StatusNotFound, msgNotFound) }

func invalidArgument(msg string) *chatapi.Error {
	return chatapi.NewError(http.StatusBadRequest, msg)
}

func hasAny(have, want []chatapi.Scope) bool {
	for _, s := range want {
		if slices.Contains(have, s) {
			return true
		}
	}
	return false
}
