package emulator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Upload is an attachment media.upload received whole.
type Upload struct {
	Space string
	// Protocol is how it came: "media" (the bytes as the body),
	// "multipart" (metadata and bytes in one multipart/related body) or
	// "resumable" (a session, in Chunks requests).
	Protocol string
	Size     int64
	SHA256   string // hex
	Chunks   int
}

// Uploads returns the attachments uploaded so far, oldest first.
func (e *Emulator) Uploads() []Upload {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Upload(nil), e.uploaded...)
}

// session is a resumable upload under way.
type session struct {
	mu             sync.Mutex // one request of the session at a time
	space, subject string
	received       int64
	sum            hash.Hash
	chunks         int
}

// rawAnswer is a handler's answer other than 200 with a JSON body.
type rawAnswer struct {
	status int
	body   any // nil: no body
}

var contentRangeRE = regexp.MustCompile(`^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$`)

// uploadMedia serves media.upload: uploadType=media and multipart in one
// request, and resumable sessions as Google's upload protocol runs them.
// The session starts with a POST of the metadata, whose answer's
// Location names the session URL (the same path with upload_id); the
// bytes follow in one or more POSTs or PUTs to it, each with a
// Content-Range. A request that leaves the upload incomplete is answered
// 308 with the Range received, or, when it sends X-GUploader-No-308: yes
// (as Google's Go client does), 200 with X-Http-Status-Code-Override:
// 308. Bytes are hashed as they stream, never held.
func (c *call) uploadMedia() (any, *chatapi.Error) {
	space := c.m.Space(c.vars)
	c.r.Body = http.MaxBytesReader(c.w, c.r.Body, c.m.MaxBody)
	if id := c.q.Get("upload_id"); id != "" {
		return c.continueUpload(space, id)
	}
	switch ut := c.q.Get("uploadType"); ut {
	case "resumable":
		if _, err := io.Copy(io.Discard, io.LimitReader(c.r.Body, maxMetadata)); err != nil {
			return nil, invalidArgument("chat-broker emulator: read upload metadata: " + err.Error())
		}
		id := randomID(24)
		c.e.mu.Lock()
		c.e.sessions[id] = &session{space: space, subject: c.tok.subject, sum: sha256.New()}
		c.e.mu.Unlock()
		scheme := "http"
		if c.r.TLS != nil {
			scheme = "https"
		}
		c.w.Header().Set("Location", fmt.Sprintf("%s://%s%s?uploadType=resumable&upload_id=%s", scheme, c.r.Host, c.r.URL.Path, id))
		c.w.Header().Set("X-GUploader-UploadID", id)
		return rawAnswer{status: http.StatusOK}, nil
	case "media":
		return c.finishUpload(space, "media", c.r.Body, 1)
	case "multipart":
		mt, params, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/related" || params["boundary"] == "" {
			return nil, invalidArgument("chat-broker emulator: uploadType=multipart needs a multipart/related body with a boundary")
		}
		mr := multipart.NewReader(c.r.Body, params["boundary"])
		if _, err := mr.NextPart(); err != nil { // the metadata
			return nil, invalidArgument("chat-broker emulator: the multipart body has no metadata part")
		}
		media, err := mr.NextPart()
		if err != nil {
			return nil, invalidArgument("chat-broker emulator: the multipart body has no media part")
		}
		return c.finishUpload(space, "multipart", media, 1)
	default:
		return nil, invalidArgument(fmt.Sprintf("Invalid uploadType %q: use media, multipart or resumable.", ut))
	}
}

// maxMetadata bounds the JSON metadata of an upload.
const maxMetadata = 1 << 20

func (c *call) finishUpload(space, protocol string, body io.Reader, chunks int) (any, *chatapi.Error) {
	sum := sha256.New()
	n, err := io.Copy(sum, body)
	if err != nil {
		return nil, invalidArgument("chat-broker emulator: read upload: " + err.Error())
	}
	return c.recordUpload(Upload{Space: space, Protocol: protocol, Size: n, SHA256: hex.EncodeToString(sum.Sum(nil)), Chunks: chunks}), nil
}

func (c *call) recordUpload(u Upload) any {
	c.e.mu.Lock()
	c.e.uploaded = append(c.e.uploaded, u)
	c.e.mu.Unlock()
	id := randomID(16)
	return map[string]any{"attachmentDataRef": map[string]any{
		"resourceName":          u.Space + "/attachments/" + id,
		"attachmentUploadToken": "emu-upload-" + id,
	}}
}

func (c *call) continueUpload(space, id string) (any, *chatapi.Error) {
	c.e.mu.Lock()
	s := c.e.sessions[id]
	c.e.mu.Unlock()
	if s == nil || s.space != space || s.subject != c.tok.subject {
		return nil, chatapi.NewError(http.StatusNotFound, "No upload session with this upload_id.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := contentRangeRE.FindStringSubmatch(c.r.Header.Get("Content-Range"))
	if m == nil {
		return nil, invalidArgument(`chat-broker emulator: a resumable upload request needs Content-Range: bytes FIRST-LAST/TOTAL (or */TOTAL)`)
	}
	total := int64(-1)
	if m[3] != "*" {
		total, _ = strconv.ParseInt(m[3], 10, 64)
	}
	if m[1] != "" {
		first, _ := strconv.ParseInt(m[1], 10, 64)
		last, _ := strconv.ParseInt(m[2], 10, 64)
		if first != s.received || last < first {
			return nil, invalidArgument(fmt.Sprintf("chat-broker emulator: Content-Range starts at %d, but %d bytes were received", first, s.received))
		}
		n, err := io.Copy(s.sum, io.LimitReader(c.r.Body, last-first+1))
		s.received += n
		if err != nil || n != last-first+1 {
			return nil, invalidArgument(fmt.Sprintf("chat-broker emulator: the chunk has %d bytes, Content-Range says %d", n, last-first+1))
		}
		s.chunks++
	}
	if total >= 0 && s.received == total {
		c.e.mu.Lock()
		delete(c.e.sessions, id)
		c.e.mu.Unlock()
		return c.recordUpload(Upload{Space: space, Protocol: "resumable", Size: s.received, SHA256: hex.EncodeToString(s.sum.Sum(nil)), Chunks: s.chunks}), nil
	}
	if total >= 0 && s.received > total {
		return nil, invalidArgument("chat-broker emulator: more bytes than the total")
	}
	if s.received > 0 {
		c.w.Header().Set("Range", fmt.Sprintf("bytes=0-%d", s.received-1))
	}
	if strings.EqualFold(c.r.Header.Get("X-GUploader-No-308"), "yes") {
		c.w.Header().Set("X-Http-Status-Code-Override", "308")
		return rawAnswer{status: http.StatusOK}, nil
	}
	return rawAnswer{status: http.StatusPermanentRedirect}, nil
}

// isContinuation reports whether r continues a resumable upload with a
// PUT, which Google's Java and Python clients use for the bytes; the
// router knows media.upload by POST.
func isContinuation(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Query().Get("upload_id") != "" &&
		(strings.HasPrefix(r.URL.Path, "/upload/") || strings.HasPrefix(r.URL.Path, "/resumable/"))
}
