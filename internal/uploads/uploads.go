package uploads

import (
	"net/http"
	"net/url"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/chat-broker/chat-broker/internal/refusal"
)

// maxSessions bounds the record; Google's sessions last a week.
const maxSessions = 4096

// Session is who started a resumable upload: the caller, the space it
// uploads to and the subject it acts as.
type Session struct {
	Caller, Space, Subject string
}

// Sessions is the record of the sessions started through the broker.
type Sessions struct {
	c *lru.Cache[string, Session]
}

// New returns an empty record.
func New() Sessions {
	c, _ := lru.New[string, Session](maxSessions) // size > 0: cannot fail
	return Sessions{c}
}

// Check refuses a continuation of the session uploadID unless s started
// it.
func (u Sessions) Check(uploadID string, s Session) error {
	if got, ok := u.c.Get(uploadID); !ok || got != s {
		return refusal.New(http.StatusNotFound, "UPLOAD_SESSION_UNKNOWN",
			"no resumable upload with this upload_id was started through this broker by this caller, in this space and as this subject (sessions do not outlive a restart of the broker): start the upload again")
	}
	return nil
}

// Subject is the subject of the caller's session uploadID, or "" when
// it names none of the caller's sessions.
func (u Sessions) Subject(caller, uploadID string) string {
	if uploadID == "" {
		return ""
	}
	if s, ok := u.c.Peek(uploadID); ok && s.Caller == caller {
		return s.Subject
	}
	return ""
}

// Started records the session a start's answer named in sessionURLs
// (header name to value, such as its Location and X-Goog-Upload-URL,
// which resp no longer has) for s, and sets them on resp again
// rewritten to origin, the broker's address as the caller called it.
// path is the start's path below basePath, upstream's path. A session
// URL that is not the upstream's own upload path for the same space is
// dropped, never passed on.
func (u Sessions) Started(resp *http.Response, sessionURLs map[string]string, upstream *url.URL, basePath, origin, path string, s Session) {
	for h, v := range sessionURLs {
		if v == "" || resp.StatusCode/100 != 2 {
			continue
		}
		loc, err := url.Parse(v)
		if err != nil || loc.Host != upstream.Host || loc.Scheme != upstream.Scheme || loc.User != nil || loc.Fragment != "" {
			continue
		}
		locPath := strings.TrimPrefix(loc.Path, basePath)
		id := loc.Query().Get("upload_id")
		if id == "" || !strings.HasPrefix(loc.Path, basePath) || !sameTarget(locPath, path) {
			continue
		}
		u.c.Add(id, s)
		resp.Header.Set(h, origin+locPath+"?"+loc.RawQuery)
	}
}

// Finished forgets session uploadID once resp says its upload is over:
// done (2xx that is not Google's "resume incomplete"), or refused for
// good (4xx).
func (u Sessions) Finished(resp *http.Response, uploadID string) {
	incomplete := resp.StatusCode == http.StatusPermanentRedirect || resp.Header.Get("X-Http-Status-Code-Override") == "308"
	if incomplete || resp.StatusCode >= 500 {
		return
	}
	u.c.Remove(uploadID)
}

// sameTarget reports whether two upload paths name the same space's
// upload ("/upload/v1/spaces/A/attachments:upload" and
// "/resumable/upload/v1/spaces/A/attachments:upload" do).
func sameTarget(a, b string) bool {
	trim := func(p string) string {
		p = strings.TrimPrefix(p, "/resumable")
		return strings.TrimPrefix(p, "/upload")
	}
	return trim(a) == trim(b)
}
