package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/compute/metadata"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/googleapi"
	iamcredentials "google.golang.org/api/iamcredentials/v1"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Keyless mode's defaults: Google's endpoints, and the scope the broker's
// own credentials need to call the IAM Credentials API.
const (
	DefaultIAMEndpoint   = "https://iamcredentials.googleapis.com/"
	DefaultTokenEndpoint = google.JWTTokenURL
	cloudPlatformScope   = "https://www.googleapis.com/auth/cloud-platform"
	jwtBearerGrant       = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	serviceGenerate = "IAM Credentials generateAccessToken"
	serviceSignJwt  = "IAM Credentials signJwt"
)

// Impersonation configures keyless mode: no key file; the broker's own
// Google identity (Application Default Credentials: GKE Workload
// Identity's metadata server, workload identity federation, gcloud's
// credentials) mints the Chat app's tokens through the IAM Service
// Account Credentials API. App authentication (no subject) takes one
// generateAccessToken call for the scope set; domain-wide delegation
// takes a signJwt over the claims a key would sign (iss, sub, scope, aud,
// iat, exp) and the JWT-bearer exchange at TokenEndpoint. The broker's
// identity needs roles/iam.serviceAccountTokenCreator on ServiceAccount.
type Impersonation struct {
	// ServiceAccount is the email of the Chat app's service account, the
	// one whose tokens are minted. Required.
	ServiceAccount string
	// IAMEndpoint is the root URL of the IAM Service Account Credentials
	// API. "" means DefaultIAMEndpoint.
	IAMEndpoint string
	// TokenEndpoint is where a delegation assertion signed by signJwt is
	// exchanged, and that assertion's aud. "" means DefaultTokenEndpoint.
	TokenEndpoint string
	// Credentials returns the broker's own credentials, which call the
	// IAM Credentials API; ctx lives as long as the Broker. Nil means
	// Application Default Credentials with the cloud-platform scope
	// (golang.org/x/oauth2/google.FindDefaultCredentials, which honours
	// GOOGLE_APPLICATION_CREDENTIALS and GCE_METADATA_HOST). It is called
	// by mints until it succeeds once, so credentials that appear after
	// startup (a metadata server still starting) are picked up.
	Credentials func(ctx context.Context) (*google.Credentials, error)
	// Lifetime is what generateAccessToken is asked for, and the life of
	// a delegation assertion. 0 means one hour, Google's most without an
	// organization policy exception; less is allowed down to a minute.
	Lifetime time.Duration
}

// keyless is the minter of keyless mode. Its configuration is immutable;
// mu guards what it learns on the way: the IAM client, built once the
// broker's own credentials are found, and the broker's own email, for
// error messages.
type keyless struct {
	cfg  Impersonation
	acct string

	mu        sync.Mutex
	svc       *iamcredentials.Service
	creds     *google.Credentials
	self      string // the broker's own identity's email, once known
	selfKnown bool
}

func newKeyless(c Impersonation) (*keyless, error) {
	if c.ServiceAccount == "" || !strings.Contains(c.ServiceAccount, "@") || strings.ContainsAny(c.ServiceAccount, "/ \t\r\n") {
		return nil, fmt.Errorf("broker: Impersonation.ServiceAccount %q: want the Chat app's service-account email, like chat-app@PROJECT.iam.gserviceaccount.com", c.ServiceAccount)
	}
	if c.IAMEndpoint == "" {
		c.IAMEndpoint = DefaultIAMEndpoint
	}
	if c.TokenEndpoint == "" {
		c.TokenEndpoint = DefaultTokenEndpoint
	}
	for _, f := range []struct{ name, v string }{{"IAMEndpoint", c.IAMEndpoint}, {"TokenEndpoint", c.TokenEndpoint}} {
		if u, err := url.Parse(f.v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("broker: Impersonation.%s %q: want an absolute http(s) URL", f.name, f.v)
		}
	}
	if !strings.HasSuffix(c.IAMEndpoint, "/") {
		c.IAMEndpoint += "/" // the generated client appends "v1/…"
	}
	switch {
	case c.Lifetime == 0:
		c.Lifetime = time.Hour
	case c.Lifetime < minLifetime || c.Lifetime > 12*time.Hour:
		return nil, fmt.Errorf("broker: Impersonation.Lifetime %v: want between 1m and 12h (0 for 1h)", c.Lifetime)
	}
	if c.Credentials == nil {
		c.Credentials = func(ctx context.Context) (*google.Credentials, error) {
			return google.FindDefaultCredentials(ctx, cloudPlatformScope)
		}
	}
	return &keyless{cfg: c, acct: "keyless\x00" + c.ServiceAccount + "\x00" + c.IAMEndpoint + "\x00" + c.TokenEndpoint}, nil
}

func (k *keyless) account() string { return k.acct }

func (k *keyless) logAttr() slog.Attr { return slog.String("impersonate", k.cfg.ServiceAccount) }

// grant mints with generateAccessToken (no subject) or signJwt and the
// JWT-bearer exchange (a delegated subject).
func (k *keyless) grant(ctx context.Context, b *Broker, start time.Time, subject string, scopes []chatapi.Scope) (granted, error) {
	fail := func(service string, status int, code string, cause error) error {
		return &MintError{Scopes: scopes, Subject: subject, Service: service, StatusCode: status, Code: code, Err: cause}
	}
	svc, err := k.service(b)
	if err != nil {
		return granted{}, &MintError{Scopes: scopes, Subject: subject, permanent: true, Err: err}
	}
	urls := make([]string, len(scopes))
	for i, s := range scopes {
		urls[i] = s.URL()
	}
	name := "projects/-/serviceAccounts/" + k.cfg.ServiceAccount

	if subject == "" {
		resp, err := svc.Projects.ServiceAccounts.GenerateAccessToken(name, &iamcredentials.GenerateAccessTokenRequest{
			Scope:    urls,
			Lifetime: fmt.Sprintf("%ds", int64(k.cfg.Lifetime/time.Second)),
		}).Context(ctx).Do()
		if err != nil {
			return granted{}, k.iamError(ctx, b, serviceGenerate, err, scopes, subject)
		}
		expiry, perr := time.Parse(time.RFC3339, resp.ExpireTime)
		if resp.AccessToken == "" || perr != nil {
			return granted{}, fail(serviceGenerate, resp.HTTPStatusCode, "", errors.New("the answer has no accessToken or no valid expireTime"))
		}
		// expireTime is by Google's clock; never trust it for longer
		// than was asked, so a clock behind Google's cannot stretch it.
		lifetime := min(expiry.Sub(start), k.cfg.Lifetime)
		return granted{access: resp.AccessToken, lifetime: lifetime}, nil
	}

	// Delegation: the claims a key would sign, signed by Google with the
	// app's service account. iat is 10 s back, as x/oauth2 stamps it, for
	// a clock a little ahead of Google's.
	iat := start.Add(-10 * time.Second)
	payload, _ := json.Marshal(struct { // strings and numbers: cannot fail
		Iss   string `json:"iss"`
		Sub   string `json:"sub"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Iat   int64  `json:"iat"`
		Exp   int64  `json:"exp"`
	}{k.cfg.ServiceAccount, subject, strings.Join(urls, " "), k.cfg.TokenEndpoint, iat.Unix(), iat.Add(min(k.cfg.Lifetime, time.Hour)).Unix()})
	resp, err := svc.Projects.ServiceAccounts.SignJwt(name, &iamcredentials.SignJwtRequest{Payload: string(payload)}).Context(ctx).Do()
	if err != nil {
		return granted{}, k.iamError(ctx, b, serviceSignJwt, err, scopes, subject)
	}
	if resp.SignedJwt == "" {
		return granted{}, fail(serviceSignJwt, resp.HTTPStatusCode, "", errors.New("the answer has no signedJwt"))
	}
	return k.exchange(ctx, b, resp.SignedJwt, subject, scopes)
}

// exchange trades a signed assertion for a token at the token endpoint,
// through net/http, as x/oauth2/jwt does with a key.
func (k *keyless) exchange(ctx context.Context, b *Broker, assertion, subject string, scopes []chatapi.Scope) (granted, error) {
	fail := func(status int, code, desc string, cause error) error {
		return &MintError{Scopes: scopes, Subject: subject, StatusCode: status, Code: code, Description: desc, Err: cause}
	}
	form := url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.cfg.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return granted{}, fail(0, "", "", errors.New("cannot build the token request")) // not reachable: the URL was checked
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		switch {
		case b.ctx.Err() != nil:
			return granted{}, fail(0, "", "", ErrClosed)
		case ctx.Err() != nil:
			return granted{}, fail(0, "", "", fmt.Errorf("no answer from the token endpoint within %v: %w", b.mintTimeout, context.DeadlineExceeded))
		}
		// A *url.Error names the method, the URL and the network
		// failure; the form is not in it.
		return granted{}, fail(0, "", "", errors.New("token endpoint unreachable: "+err.Error()))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return granted{}, fail(resp.StatusCode, "", "", errors.New("the answer broke off"))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		code, desc := parseErrorBody(body)
		return granted{}, fail(resp.StatusCode, code, desc, nil)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   any    `json:"expires_in"`
	}
	if json.Unmarshal(body, &tr) != nil {
		return granted{}, fail(resp.StatusCode, "", "", errors.New("the answer is not a token response"))
	}
	if tr.AccessToken == "" {
		return granted{}, fail(resp.StatusCode, "", "", errors.New("the answer has no access_token"))
	}
	lifetime, ok := expiresIn(tr.ExpiresIn)
	if !ok {
		return granted{}, fail(resp.StatusCode, "", "", errors.New("the answer has no usable expires_in"))
	}
	return granted{access: tr.AccessToken, lifetime: lifetime}, nil
}

// service returns the IAM Credentials client, finding the broker's own
// credentials first if no mint has yet.
func (k *keyless) service(b *Broker) (*iamcredentials.Service, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.svc != nil {
		return k.svc, nil
	}
	// b.ctx, not the mint's: the credentials' token source keeps it for
	// every later refresh of the broker's own token.
	creds, err := k.cfg.Credentials(b.ctx)
	if err != nil {
		return nil, adcError(err)
	}
	base := b.client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc := &http.Client{
		Transport:     &oauth2.Transport{Source: ownSource{creds.TokenSource}, Base: base},
		CheckRedirect: b.client.CheckRedirect,
	}
	svc, err := iamcredentials.NewService(b.ctx, option.WithHTTPClient(hc), option.WithEndpoint(k.cfg.IAMEndpoint))
	if err != nil {
		return nil, fmt.Errorf("IAM Credentials client: %w", err)
	}
	k.svc, k.creds = svc, creds
	return svc, nil
}

// adcError says what to do when no application default credentials are
// found, or the ones found cannot be used.
func adcError(err error) error {
	if strings.Contains(err.Error(), "could not find default credentials") {
		return errors.New("no application default credentials: on GKE turn on Workload Identity and annotate the pod's Kubernetes service account with iam.gke.io/gcp-service-account; elsewhere set GOOGLE_APPLICATION_CREDENTIALS to a credential configuration file (workload identity federation) or run 'gcloud auth application-default login'")
	}
	return fmt.Errorf("application default credentials: %s: fix the file GOOGLE_APPLICATION_CREDENTIALS names, or unset it to use the metadata server", cleanDescription(err.Error()))
}

// ownSource marks the errors of the broker's own credentials, so that a
// failure to get the broker's own token is told from IAM's answers.
type ownSource struct{ ts oauth2.TokenSource }

func (s ownSource) Token() (*oauth2.Token, error) {
	t, err := s.ts.Token()
	if err != nil {
		return nil, &ownCredsError{err}
	}
	return t, nil
}

type ownCredsError struct{ err error }

func (e *ownCredsError) Error() string { return "the broker's own credentials: " + e.err.Error() }
func (e *ownCredsError) Unwrap() error { return e.err }

// iamError turns a failed IAM Credentials call into a MintError whose
// text is one line with the fix.
func (k *keyless) iamError(ctx context.Context, b *Broker, service string, err error, scopes []chatapi.Scope, subject string) error {
	me := &MintError{Scopes: scopes, Subject: subject, Service: service}
	var own *ownCredsError
	var ge *googleapi.Error
	switch {
	case b.ctx.Err() != nil:
		me.Err = ErrClosed
	case errors.As(err, &own):
		me.Service = ""
		me.Err, me.permanent = k.ownError(own.err)
	case errors.As(err, &ge):
		me.StatusCode = ge.Code
		reason, meta := errorInfo(ge)
		me.Code = reason
		me.Err = k.iamFix(ctx, service, ge, reason, meta)
		if me.Err == nil {
			me.Description = cleanDescription(ge.Message)
		}
	case ctx.Err() != nil:
		me.Err = fmt.Errorf("no answer from the IAM Credentials API within %v: %w", b.mintTimeout, context.DeadlineExceeded)
	default:
		// A *url.Error: the method, the URL and the network failure.
		me.Err = fmt.Errorf("IAM Credentials API unreachable: %s: check --iam-endpoint and the pod's egress to it", cleanDescription(err.Error()))
	}
	return me
}

// iamFix is the fix for IAM's refusals that users meet; nil for others,
// whose Google message is then shown as it came.
func (k *keyless) iamFix(ctx context.Context, service string, ge *googleapi.Error, reason string, meta map[string]string) error {
	sa := k.cfg.ServiceAccount
	msg := strings.ToLower(ge.Message)
	switch {
	case reason == "SERVICE_DISABLED" || strings.Contains(msg, "has not been used in project") || strings.Contains(msg, "it is disabled"):
		project := strings.TrimPrefix(meta["consumer"], "projects/")
		if project == "" {
			project = "PROJECT"
		}
		return fmt.Errorf("the IAM Service Account Credentials API is not enabled in project %s (the project of the broker's own credentials): gcloud services enable iamcredentials.googleapis.com --project=%s", project, project)
	case ge.Code == http.StatusForbidden:
		who, member := k.selfMember(ctx)
		if service == serviceSignJwt {
			return fmt.Errorf("signJwt refused for domain-wide delegation: %s lacks roles/iam.serviceAccountTokenCreator (iam.serviceAccounts.signJwt) on %s: gcloud iam service-accounts add-iam-policy-binding %s --role=roles/iam.serviceAccountTokenCreator --member=%s", who, sa, sa, member)
		}
		return fmt.Errorf("%s lacks roles/iam.serviceAccountTokenCreator on %s: gcloud iam service-accounts add-iam-policy-binding %s --role=roles/iam.serviceAccountTokenCreator --member=%s", who, sa, sa, member)
	case ge.Code == http.StatusNotFound:
		return fmt.Errorf("no service account %s: check --impersonate (the Chat app's service-account email)", sa)
	case ge.Code == http.StatusUnauthorized:
		return errors.New("IAM refused the broker's own credentials: check the application default credentials (on GKE, the Kubernetes service account's iam.gke.io/gcp-service-account annotation)")
	}
	return nil
}

// selfMember names the broker's own identity for an error message, and
// the --member a gcloud command grants to.
func (k *keyless) selfMember(ctx context.Context) (who, member string) {
	k.mu.Lock()
	known, self, creds := k.selfKnown, k.self, k.creds
	k.mu.Unlock()
	if !known && creds != nil {
		self = ownEmail(ctx, creds)
		k.mu.Lock()
		k.self, k.selfKnown = self, true
		k.mu.Unlock()
	}
	if self == "" {
		return "the broker's own identity", "serviceAccount:BROKER_IDENTITY"
	}
	if strings.HasSuffix(self, ".gserviceaccount.com") {
		return self, "serviceAccount:" + self
	}
	return self, "user:" + self
}

// ownEmail is the email of the broker's own credentials: the key file's
// client_email, or what the metadata server says; "" if neither says.
func ownEmail(ctx context.Context, creds *google.Credentials) string {
	if len(creds.JSON) > 0 {
		var f struct {
			Email string `json:"client_email"`
		}
		json.Unmarshal(creds.JSON, &f)
		return f.Email
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	email, err := metadata.EmailWithContext(ctx, "default")
	if err != nil || strings.ContainsAny(email, " \t\r\n") {
		return ""
	}
	return email
}

// ownError says what failed in getting the broker's own token, with the
// fix, and whether no retry can help.
func (k *keyless) ownError(err error) (error, bool) {
	var me *metadata.Error
	var nd metadata.NotDefinedError
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &nd):
		return errors.New("the metadata server has no token for the pod: on GKE turn on Workload Identity for the node pool (GKE_METADATA) and annotate the pod's Kubernetes service account with iam.gke.io/gcp-service-account"), true
	case errors.As(err, &me):
		return fmt.Errorf("the metadata server answered %d to the broker's token request: on GKE check Workload Identity on the node pool and the iam.gke.io/gcp-service-account annotation of the pod's Kubernetes service account", me.Code), me.Code < 500
	case errors.As(err, &re):
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("the broker's own credentials were refused (%d %s %s): fix GOOGLE_APPLICATION_CREDENTIALS or the gcloud credentials", status, re.ErrorCode, cleanDescription(re.ErrorDescription)), status < 500 && status != 429
	}
	k.mu.Lock()
	fromMetadata := k.creds != nil && len(k.creds.JSON) == 0
	k.mu.Unlock()
	if fromMetadata {
		host := "169.254.169.254"
		if h := metadataHost(); h != "" {
			host = h
		}
		return fmt.Errorf("metadata server unreachable at %s: %s: on GKE turn on Workload Identity for the cluster and the node pool (GKE_METADATA); off Google Cloud set GOOGLE_APPLICATION_CREDENTIALS instead", host, cleanDescription(lastCause(err))), false
	}
	return fmt.Errorf("the broker's own credentials failed: %s", cleanDescription(err.Error())), false
}

// metadataHost is GCE_METADATA_HOST, as the metadata package reads it.
func metadataHost() string { return strings.TrimSpace(os.Getenv("GCE_METADATA_HOST")) }

// lastCause is the innermost error's text: for a network failure, the
// "dial tcp …: connection refused" without the URL around it.
func lastCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// errorInfo reads the reason and metadata of the google.rpc.ErrorInfo in
// a Google API error's details.
func errorInfo(ge *googleapi.Error) (string, map[string]string) {
	for _, d := range ge.Details {
		m, ok := d.(map[string]any)
		if !ok || m["@type"] != "type.googleapis.com/google.rpc.ErrorInfo" {
			continue
		}
		reason, _ := m["reason"].(string)
		meta := map[string]string{}
		if md, ok := m["metadata"].(map[string]any); ok {
			for k, v := range md {
				if s, ok := v.(string); ok {
					meta[k] = s
				}
			}
		}
		if !isReason(reason) {
			reason = ""
		}
		return reason, meta
	}
	return "", nil
}

// isReason accepts Google's ErrorInfo reasons: UPPER_SNAKE_CASE.
func isReason(s string) bool { return isSnakeCase(s, 63, 'A') }
