package proxy

import (
	"net/http"
	"net/url"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/chat-broker/chat-broker/internal/refusal"
)

// A resumable upload (media.upload with uploadType=resumable) starts
// with a request whose answer's Location is the session URL, the same
// upload path with an upload_id; the bytes follow in requests to that
// URL. The broker passes both through, streaming, and keeps the session
// inside the broker:
//
//   - the Location of a start is rewritten to the broker's own address,
//     so the caller's client sends the bytes (and its secret) to the
//     broker, never to Google;
//   - the session is recorded with the caller, space and subject that
//     started it, and only that caller, for that space and subject, may
//     continue it. A continuation without X-Chat-Broker-Subject acts as
//     the session's subject: clients send the bytes without the start's
//     extra headers. An upload_id the broker did not see start (another
//     caller's, a made-up one, one from before a restart) is refused
//     with 404, so one caller can neither append to nor learn of
//     another's upload.
//
// maxUploadSessions bounds the record; Google's sessions last a week,
// and an evicted one only makes its caller start again.
const maxUploadSessions = 4096

type uploadSession struct {
	caller, space, subject string
}

type uploadSessions struct {
	c *lru.Cache[string, uploadSession]
}

func newUploadSessions() uploadSessions {
	c, _ := lru.New[string, uploadSession](maxUploadSessions) // size > 0: cannot fail
	return uploadSessions{c}
}

// check reports whether the caller may continue the session its query
// names.
func (u uploadSessions) check(c *call, subject string) error {
	q, _ := url.ParseQuery(c.query)
	id := q.Get("upload_id")
	s, ok := u.c.Get(id)
	if !ok || s.caller != c.caller || s.space != c.space || s.subject != subject {
		return refusal.New(http.StatusNotFound, "UPLOAD_SESSION_UNKNOWN",
			"no resumable upload with this upload_id was started through this broker by this caller, in this space and as this subject (sessions do not outlive a restart of the broker): start the upload again")
	}
	return nil
}

// subject is the subject of the caller's session that r continues, or
// "" when r continues none of the caller's sessions.
func (u uploadSessions) subject(caller string, r *http.Request) string {
	id := r.URL.Query().Get("upload_id")
	if id == "" {
		return ""
	}
	if s, ok := u.c.Peek(id); ok && s.caller == caller {
		return s.subject
	}
	return ""
}

// started records the session a start's answer named in sessionURLs
// (its Location and X-Goog-Upload-URL, which the caller's answer no
// longer has) and sets them again rewritten to origin, the broker's address as
// the caller called it. A session URL that is not the upstream's own
// upload path for the same space is dropped, never passed on.
func (u uploadSessions) started(resp *http.Response, c *call, sessionURLs map[string]string, upstream *url.URL, basePath, origin string) {
	for h, v := range sessionURLs {
		if v == "" || resp.StatusCode/100 != 2 {
			continue
		}
		loc, err := url.Parse(v)
		if err != nil || loc.Host != upstream.Host || loc.Scheme != upstream.Scheme || loc.User != nil || loc.Fragment != "" {
			continue
		}
		path := strings.TrimPrefix(loc.Path, basePath)
		id := loc.Query().Get("upload_id")
		if id == "" || !strings.HasPrefix(loc.Path, basePath) || !sameUploadTarget(path, c.path) {
			continue
		}
		u.c.Add(id, uploadSession{caller: c.caller, space: c.space, subject: c.subject})
		resp.Header.Set(h, origin+path+"?"+loc.RawQuery)
	}
}

// finished forgets a session whose upload is over: done (2xx that is not
// Google's "resume incomplete"), or refused for good (4xx).
func (u uploadSessions) finished(resp *http.Response, c *call) {
	incomplete := resp.StatusCode == http.StatusPermanentRedirect || resp.Header.Get("X-Http-Status-Code-Override") == "308"
	if incomplete || resp.StatusCode >= 500 {
		return
	}
	q, _ := url.ParseQuery(c.query)
	u.c.Remove(q.Get("upload_id"))
}

// sameUploadTarget reports whether two upload paths name the same
// space's upload ("/upload/v1/spaces/A/attachments:upload" and
// "/resumable/upload/v1/spaces/A/attachments:upload" do).
func sameUploadTarget(a, b string) bool {
	trim := func(p string) string {
		p = strings.TrimPrefix(p, "/resumable")
		return strings.TrimPrefix(p, "/upload")
	}
	return trim(a) == trim(b)
}
