package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// GoogleTokenURL is Google's token endpoint. The emulator accepts it as a
// JWT audience next to every token URL passed to ServiceAccountJSON,
// because Python's google-auth always signs for this audience while Go's
// x/oauth2 signs for the token_uri it posts to.
const GoogleTokenURL = "https://oauth2.googleapis.com/token"

const (
	projectID = "chat-broker-emulator"
	saEmail   = "chat-app@" + projectID + ".iam.gserviceaccount.com"

	// appUser is the user name Chat gives the calling app in sender and
	// member fields; "app" is also the alias of its membership.
	appUser = "users/app"

	defaultLifetime = time.Hour

	// maxLog caps the request and mint logs and each space's events in a
	// long-running emulator.
	// When a log is full its older half is dropped.
	maxLog = 100_000
)

// Config configures an Emulator. The zero value is a working emulator with
// no spaces, no approved chat.app.* scopes and no domain-wide delegation.
type Config struct {
	// Now is the clock for token expiry and timestamps; nil means time.Now.
	Now func() time.Time
	// TokenLifetime is the expires_in of issued access tokens; 0 means 1h.
	TokenLifetime time.Duration
	// Spaces are spaces that exist and where the app is a member, as "spaces/ID".
	Spaces []string
	// Approved are chat.app.* scopes a Workspace admin has approved. Default none (like a new app).
	Approved []chatapi.Scope
	// Delegation allows tokens with a subject (domain-wide delegation) for
	// every user. Off (and DelegatedUsers empty): the token endpoint
	// answers 401 unauthorized_client for any assertion with sub.
	Delegation bool
	// DelegatedUsers, when not empty, are the only users (emails, compared
	// case-insensitively) an assertion may name as sub; any other sub gets
	// 401 unauthorized_client. Listing users turns delegation on for them
	// whatever Delegation says.
	DelegatedUsers []string
	// Users, when not empty, are the users the Workspace domain has
	// (emails, compared case-insensitively); an assertion whose sub names
	// anyone else gets 400 invalid_grant "Invalid email or User ID", as
	// Google answers for a user it does not know. Empty: every
	// well-formed email is a user.
	Users []string
	// Logger for the emulator's own operational logs; nil discards.
	Logger *slog.Logger
	// Seed seeds the random source that decides which requests a Fault
	// with a Fraction applies to, so that a test sees the same faults on
	// every run; 0 means a random seed (Seed reports it). SetSeed changes
	// it at run time.
	Seed int64
	// Quotas are Chat's per-minute quotas to enforce (quota.go); the zero
	// value enforces none. SetQuotas changes them at run time.
	Quotas Quotas
}

// Emulator is an in-memory Google token endpoint and Chat REST API. It is
// an http.Handler; serve it with httptest.NewServer or an http.Server.
// All methods are safe for concurrent use.
type Emulator struct {
	now      func() time.Time
	log      *slog.Logger
	router   *chatapi.Router
	key      *rsa.PrivateKey
	keyPEM   string
	keyID    string
	clientID string
	project  string // project number, for quota error bodies

	mu        sync.Mutex
	lifetime  time.Duration
	tokenDown bool
	tokenErr  *oauthError // SetTokenError; nil when cleared
	// A sub may be delegated to when delegateAll is set or its lower-case
	// form is in delegates.
	delegateAll bool
	delegates   map[string]bool
	users       map[string]bool     // Config.Users, lower-case; empty: everyone
	sessions    map[string]*session // resumable uploads under way, by upload_id
	uploaded    []Upload
	audiences   map[string]bool
	approved    map[chatapi.Scope]bool
	tokens      map[string]*token
	spaces      map[string]*space
	spaceReqs   map[string]string // requestKey → space name
	seq         int64             // creation order of spaces and messages
	requests    []Request
	mints       []Mint
	minted      chan struct{} // closed and replaced on every mint
	faults      []*fault
	seed        int64
	rng         *mrand.Rand // for Fault.Fraction
	counters    Counters
	quota       quotaState // Config.Quotas and their counts (quota.go)
	iam         iamState   // IAM Credentials and the metadata server (iam.go)
}

// New returns an emulator with a freshly generated RSA-2048 service-account
// key. It fails on a malformed space name, an Approved scope that is not a
// chat.app.* scope, or a negative TokenLifetime.
func New(cfg Config) (*Emulator, error) {
	if cfg.TokenLifetime < 0 {
		return nil, fmt.Errorf("emulator: TokenLifetime %v is negative", cfg.TokenLifetime)
	}
	e := &Emulator{
		now:         cfg.Now,
		log:         cfg.Logger,
		router:      chatapi.NewRouter(),
		lifetime:    cfg.TokenLifetime,
		delegateAll: cfg.Delegation && len(cfg.DelegatedUsers) == 0,
		delegates:   map[string]bool{},
		users:       map[string]bool{},
		sessions:    map[string]*session{},
		audiences:   map[string]bool{GoogleTokenURL: true},
		approved:    map[chatapi.Scope]bool{},
		tokens:      map[string]*token{},
		spaces:      map[string]*space{},
		spaceReqs:   map[string]string{},
		minted:      make(chan struct{}),
	}
	e.seedLocked(cfg.Seed)
	if err := e.SetQuotas(cfg.Quotas); err != nil {
		return nil, err
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.lifetime == 0 {
		e.lifetime = defaultLifetime
	}
	for i, s := range cfg.Approved {
		sc, ok := chatapi.ParseScope(string(s))
		if !ok || !sc.IsApp() {
			return nil, fmt.Errorf("emulator: Approved[%d]: %q is not a chat.app.* scope", i, s)
		}
		e.approved[sc] = true
	}
	for i, u := range cfg.DelegatedUsers {
		if !validEmail(u) {
			return nil, fmt.Errorf("emulator: DelegatedUsers[%d]: %q is not a user's email", i, u)
		}
		e.delegates[strings.ToLower(u)] = true
	}
	for i, u := range cfg.Users {
		if !validEmail(u) {
			return nil, fmt.Errorf("emulator: Users[%d]: %q is not a user's email", i, u)
		}
		e.users[strings.ToLower(u)] = true
	}
	for i, name := range cfg.Spaces {
		if !validSpaceName(name) {
			return nil, fmt.Errorf(`emulator: Spaces[%d]: %q is not a space name like "spaces/AAAA"`, i, name)
		}
		e.addSpaceLocked(name, true)
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("emulator: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("emulator: encode key: %w", err)
	}
	e.key = key
	e.keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	e.keyID = hex.EncodeToString(randomBytes(20))
	e.clientID = randomDigits(21)
	e.project = randomDigits(12)
	return e, nil
}

// ServeHTTP serves POST /token (the OAuth 2.0 JWT-bearer token endpoint),
// the Chat REST API under /v1/, /upload/v1/ and /resumable/upload/v1/,
// the IAM Credentials API under /v1/projects/-/serviceAccounts/ and the
// metadata server under /computeMetadata/v1/ (iam.go, metadata.go), and
// the emulator's own control API under /emulator/ (docs/emulator.md
// describes each). Any other path is answered 404 in Google's error shape.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/token":
		e.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, iamPrefix):
		e.serveIAM(w, r)
	case strings.HasPrefix(r.URL.Path, metadataPrefix):
		e.serveMetadata(w, r)
	case strings.HasPrefix(r.URL.Path, adminPrefix):
		e.serveAdmin(w, r)
	default:
		e.serveChat(w, r)
	}
}

// serviceAccountKey is the layout of a Google service-account key file.
type serviceAccountKey struct {
	Type                    string `json:"type"`
	ProjectID               string `json:"project_id"`
	PrivateKeyID            string `json:"private_key_id"`
	PrivateKey              string `json:"private_key"`
	ClientEmail             string `json:"client_email"`
	ClientID                string `json:"client_id"`
	AuthURI                 string `json:"auth_uri"`
	TokenURI                string `json:"token_uri"`
	AuthProviderX509CertURL string `json:"auth_provider_x509_cert_url"`
	ClientX509CertURL       string `json:"client_x509_cert_url"`
	UniverseDomain          string `json:"universe_domain"`
}

// ServiceAccountJSON returns a service-account key file (type
// service_account, project_id, private_key_id, private_key as PKCS#8 PEM,
// client_email, client_id, auth_uri, token_uri=tokenURL, …) for the
// emulator's key. The emulator remembers tokenURL as an accepted JWT
// audience. Pass the URL the emulator's /token is reachable at, such as
// srv.URL+"/token"; an empty tokenURL means GoogleTokenURL.
func (e *Emulator) ServiceAccountJSON(tokenURL string) []byte {
	if tokenURL == "" {
		tokenURL = GoogleTokenURL
	}
	e.mu.Lock()
	e.audiences[tokenURL] = true
	e.mu.Unlock()
	b, _ := json.MarshalIndent(serviceAccountKey{ // strings only: cannot fail
		Type:                    "service_account",
		ProjectID:               projectID,
		PrivateKeyID:            e.keyID,
		PrivateKey:              e.keyPEM,
		ClientEmail:             saEmail,
		ClientID:                e.clientID,
		AuthURI:                 "https://accounts.google.com/o/oauth2/auth",
		TokenURI:                tokenURL,
		AuthProviderX509CertURL: "https://www.googleapis.com/oauth2/v1/certs",
		ClientX509CertURL:       "https://www.googleapis.com/robot/v1/metadata/x509/" + url.PathEscape(saEmail),
		UniverseDomain:          "googleapis.com",
	}, "", "  ")
	return append(b, '\n')
}

// ClientEmail returns the service account's email, the iss every assertion
// must carry.
func (e *Emulator) ClientEmail() string { return saEmail }

// Request is one Chat API request as received (not /token).
type Request struct {
	Time                 time.Time
	Verb, Path, RawQuery string
	// MethodID is the catalog id, "" if unrouted.
	MethodID string
	// Authorization is the raw Authorization header as received (tests
	// assert no caller secret ever arrives).
	Authorization string
	// ContentEncoding is the Content-Encoding header as received ("gzip"
	// from Google's Java client, which compresses JSON bodies).
	ContentEncoding string
	// Scopes are the scopes of the presented token if it was valid.
	Scopes []chatapi.Scope
	// Subject is the subject of the token ("" for app authentication).
	Subject string
	// Status is the status the emulator answered; 0 if a Reset fault
	// dropped the connection instead, 499 if the client gave up during
	// an injected latency.
	Status int
}

// Requests returns a copy of the request log, oldest first. An entry is
// logged before its response is written, so a client that has its
// response finds its request here.
func (e *Emulator) Requests() []Request {
	return copyLog(e, &e.requests, func(r *Request) { r.Scopes = slices.Clone(r.Scopes) })
}

// ResetRequests empties the request log.
func (e *Emulator) ResetRequests() {
	e.mu.Lock()
	e.requests = nil
	e.mu.Unlock()
}

// Mint is one successful token issue.
type Mint struct {
	Time     time.Time
	Scopes   []chatapi.Scope
	Subject  string
	Audience string
	// Via is how it was issued: "jwt-bearer" (an assertion signed with
	// the key, at /token), "signJwt" (an assertion IAM's signJwt signed,
	// at /token) or "generateAccessToken" (IAM Credentials; no
	// Audience).
	Via string
}

// Mints returns the successful token issues, oldest first.
func (e *Emulator) Mints() []Mint {
	return copyLog(e, &e.mints, func(m *Mint) { m.Scopes = slices.Clone(m.Scopes) })
}

// copyLog returns a copy of a log, taken under e.mu; deepen copies what
// an entry shares with the log's own.
func copyLog[T any](e *Emulator, log *[]T, deepen func(*T)) []T {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]T, len(*log))
	copy(out, *log)
	for i := range out {
		deepen(&out[i])
	}
	return out
}

// appendCapped appends v to a log of the emulator's; a full one (maxLog
// entries) first drops its older half.
func appendCapped[T any](log []T, v T) []T {
	if len(log) >= maxLog {
		log = append(log[:0:0], log[len(log)/2:]...)
	}
	return append(log, v)
}

// WaitForMints blocks until at least n tokens have been issued in total or
// ctx ends, and returns ctx.Err() in the latter case.
func (e *Emulator) WaitForMints(ctx context.Context, n int) error {
	for {
		e.mu.Lock()
		have, ch := len(e.mints), e.minted
		e.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Approve records whether a Workspace administrator has approved a
// chat.app.* scope for the app. It takes effect for tokens already issued,
// as approval does at Google. Other scopes need no approval and are
// ignored.
func (e *Emulator) Approve(scope chatapi.Scope, approved bool) {
	s, _ := chatapi.ParseScope(string(scope))
	if !s.IsApp() {
		return
	}
	e.mu.Lock()
	e.approved[s] = approved
	e.mu.Unlock()
}

// AddSpace creates a space named "spaces/ID" (a bare ID is accepted too)
// with two seeded human members, or, when it exists, sets whether the app
// is a member of it.
func (e *Emulator) AddSpace(name string, appIsMember bool) {
	if !strings.HasPrefix(name, "spaces/") {
		name = "spaces/" + name
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if sp := e.spaces[name]; sp != nil {
		sp.appMember = appIsMember
		return
	}
	e.addSpaceLocked(name, appIsMember)
}

// AddMember makes the user (an email, or "users/ID") a human member of
// the space, as a setup step for tests: what a user may search, for
// example, is what their spaces hold. It does nothing for a space that
// does not exist or a user already in it.
func (e *Emulator) AddMember(space, user string) {
	if !strings.HasPrefix(space, "spaces/") {
		space = "spaces/" + space
	}
	if !strings.HasPrefix(user, "users/") {
		user = "users/" + user
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if sp := e.spaces[space]; sp != nil && !sp.hasHumanLocked(user) {
		sp.humans = append(sp.humans, member{user: user, role: "ROLE_MEMBER", created: e.now()})
	}
}

// SetTokenEndpointDown makes /token answer 503 with a Google-like JSON
// body while down is true. Tokens already issued keep working. It takes
// precedence over SetTokenError.
func (e *Emulator) SetTokenEndpointDown(down bool) {
	e.mu.Lock()
	e.tokenDown = down
	e.mu.Unlock()
}

// SetTokenLifetime changes the lifetime of tokens issued from now on; 0
// means 1h.
func (e *Emulator) SetTokenLifetime(d time.Duration) {
	if d <= 0 {
		d = defaultLifetime
	}
	e.mu.Lock()
	e.lifetime = d
	e.mu.Unlock()
}

// SetDelegation turns domain-wide delegation on or off for every user, for
// assertions presented from now on. It forgets the users named by
// Config.DelegatedUsers and SetUserDelegation.
func (e *Emulator) SetDelegation(on bool) {
	e.mu.Lock()
	e.delegateAll = on
	e.delegates = map[string]bool{}
	e.mu.Unlock()
}

// SetUserDelegation allows or refuses one user (an email, compared
// case-insensitively) as the sub of assertions presented from now on.
// From the first call on, delegation is per user: only the users
// allowed by Config.DelegatedUsers or by SetUserDelegation may be a sub,
// even if every user was allowed before. Tokens already issued keep
// working until they expire.
func (e *Emulator) SetUserDelegation(user string, on bool) {
	e.mu.Lock()
	e.delegateAll = false
	if on {
		e.delegates[strings.ToLower(user)] = true
	} else {
		delete(e.delegates, strings.ToLower(user))
	}
	e.mu.Unlock()
}

// delegatedLocked reports whether sub may be the subject of a token.
// Callers hold e.mu.
func (e *Emulator) delegatedLocked(sub string) bool {
	return e.delegateAll || e.delegates[strings.ToLower(sub)]
}

// delegationState returns whether every user may be a subject, and
// otherwise which users may, sorted.
func (e *Emulator) delegationState() (all bool, users []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for u := range e.delegates {
		users = append(users, u)
	}
	slices.Sort(users)
	return e.delegateAll, users
}

// validEmail reports whether s looks like an email: one @ with something
// on either side, and no spaces or slashes.
func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.ContainsAny(s, " /\t\n") && !strings.Contains(domain, "@")
}

// Message is a stored Chat message.
type Message struct {
	// Name is "spaces/ID/messages/MID", with the server-assigned MID.
	Name string
	// Space is "spaces/ID".
	Space string
	Text  string
	// Thread is the thread's name, "spaces/ID/threads/TID".
	Thread string
	// Sender is "users/app" for messages the app created, "users/SUBJECT"
	// for messages created with domain-wide delegation.
	Sender string
	// RequestID is the requestId the message was created with, if any.
	RequestID string
	// ClientAssignedID is the messageId ("client-…") it was created with, if any.
	ClientAssignedID string
	CreateTime       time.Time
	// UpdateTime is the time of the last patch or update; zero if none.
	UpdateTime time.Time
}

// Messages returns the messages stored in a space, in creation order. A
// deleted message is gone. An unknown space has none.
func (e *Emulator) Messages(space string) []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	sp := e.spaces[space]
	if sp == nil {
		return nil
	}
	out := make([]Message, 0, len(sp.msgs))
	for _, m := range sp.msgs {
		out = append(out, Message{
			Name:             m.name(),
			Space:            m.space,
			Text:             m.text,
			Thread:           m.thread,
			Sender:           m.sender,
			RequestID:        m.requestID,
			ClientAssignedID: m.clientID,
			CreateTime:       m.created,
			UpdateTime:       m.updated,
		})
	}
	return out
}

// Spaces returns the names of the spaces that exist, in creation order.
func (e *Emulator) Spaces() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.spaces))
	for _, sp := range e.sortedSpacesLocked() {
		out = append(out, sp.name)
	}
	return out
}

// record appends a request to the log.
func (e *Emulator) record(r Request) {
	e.mu.Lock()
	e.countRequestLocked(&r)
	e.requests = appendCapped(e.requests, r)
	e.mu.Unlock()
	e.log.Info("emulator: chat request", "verb", r.Verb, "path", r.Path, "method", r.MethodID, "status", r.Status)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand documents it)
	return b
}

// randomDigits returns n decimal digits, the first non-zero.
func randomDigits(n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		lo := int64(0)
		if i == 0 {
			lo = 1
		}
		d, _ := rand.Int(rand.Reader, big.NewInt(10-lo))
		sb.WriteByte(byte('0' + lo + d.Int64()))
	}
	return sb.String()
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomID returns n characters of [A-Za-z0-9], the shape of Chat's
// space, thread and message ids.
func randomID(n int) string {
	out := make([]byte, 0, n)
	for len(out) < n {
		for _, b := range randomBytes(n) {
			// 248 = 4*62: rejecting the rest keeps the choice uniform.
			if b < 248 && len(out) < n {
				out = append(out, idAlphabet[b%62])
			}
		}
	}
	return string(out)
}
