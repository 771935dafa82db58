package broker

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Source is a Broker as the request path takes its tokens: each one as an
// interface that can only set itself on a request, so that the request
// path depends on no type of this package. (proxy.TokenSource is written
// with the same interface literal, which is why Source satisfies it
// without either package importing the other.)
type Source struct{ b *Broker }

// Source returns b as a Source.
func (b *Broker) Source() Source { return Source{b} }

// Token is Broker.Token, with the token as the interface.
func (s Source) Token(ctx context.Context, subject string, scopes []chatapi.Scope) (interface{ SetAuthHeader(*http.Request) }, error) {
	t, err := s.b.Token(ctx, subject, scopes)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// InvalidateToken is Broker.InvalidateToken for a token Token handed out;
// it ignores any other value.
func (s Source) InvalidateToken(t interface{ SetAuthHeader(*http.Request) }) {
	if tok, ok := t.(Token); ok {
		s.b.InvalidateToken(tok)
	}
}

// DelegationRefused reports whether Google refused to let the service
// account act for the user (unauthorized_client): a Workspace admin must
// grant domain-wide delegation for these scopes; retrying cannot help.
func (e *MintError) DelegationRefused() bool {
	return e.Code == "unauthorized_client" && e.Subject != ""
}

// SubjectUnknown reports whether Google does not know the delegated
// user (invalid_grant, "Invalid email or User ID" or "Not a valid
// email"): the subject named is wrong, and no retry or grant fixes it.
func (e *MintError) SubjectUnknown() bool {
	if e.Code != "invalid_grant" || e.Subject == "" {
		return false
	}
	d := strings.ToLower(e.Description)
	return strings.Contains(d, "invalid email or user id") || strings.Contains(d, "not a valid email")
}

// RetryAfter is RetryAfter(e): whether the failure is worth retrying, and
// after how long.
func (e *MintError) RetryAfter() (time.Duration, bool) { return RetryAfter(e) }
