package inbound

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/refusal"
)

// The request hygiene rules. Each rule refuses rather than repairs: a
// request the broker cannot read one way only is not guessed at.
//
// Go's HTTP/1 server answers some malformed shapes itself, before the
// handler runs, with a plain-text status and no Google-shaped body
// (bypass_test.go proves each one):
//
//   - 400: control characters, spaces or tabs in the request target; a
//     missing, repeated or malformed Host; header names with spaces; header
//     values with control characters; a Content-Length that is not a
//     number ("+12", "12, 12") or two Content-Lengths that differ;
//   - 501: a Transfer-Encoding other than one "chunked" (gzip, "gzip,
//     chunked", two Transfer-Encoding fields);
//   - 417: an Expect other than 100-continue;
//   - 431: a request line and headers over the server's MaxHeaderBytes;
//   - 505: HTTP/0.9 and HTTP/2.0 request lines (other than the h2 preface);
//   - 200: OPTIONS *, answered by the server and never forwarded.
//
// Two more it repairs silently, so the handler cannot see them: it drops
// a Content-Length sent together with Transfer-Encoding: chunked (RFC
// 9112 §6.3: the chunked framing wins) and merges repeated identical
// Content-Lengths into one. Neither is ambiguous once Go has read it, and
// the broker re-frames every request it forwards, so Google never sees
// the caller's framing. What is left to guard is a front end in the pod
// that read the same bytes by their Content-Length: CheckFraming makes a
// chunked request the last one read from its connection.

// Reasons of the hygiene refusals, the ErrorInfo reason callers get.
const (
	reasonConnectNotAllowed          = "CONNECT_NOT_ALLOWED"
	reasonTargetNotOriginForm        = "TARGET_NOT_ORIGIN_FORM"
	reasonPathNotCanonical           = "PATH_NOT_CANONICAL"
	reasonPathCharacterNotAllowed    = "PATH_CHARACTER_NOT_ALLOWED"
	reasonURITooLong                 = "URI_TOO_LONG"
	reasonHTTPVersionNotSupported    = "HTTP_VERSION_NOT_SUPPORTED"
	reasonFramingAmbiguous           = "REQUEST_FRAMING_AMBIGUOUS"
	reasonTrailerNotAllowed          = "TRAILER_NOT_ALLOWED"
	reasonExpectationNotSupported    = "EXPECTATION_NOT_SUPPORTED"
	reasonUpgradeNotAllowed          = "UPGRADE_NOT_ALLOWED"
	reasonConnectionOptionNotAllowed = "CONNECTION_OPTION_NOT_ALLOWED"
	reasonHeaderNameNotAllowed       = "HEADER_NAME_NOT_ALLOWED"
	reasonMethodOverrideNotAllowed   = "METHOD_OVERRIDE_NOT_ALLOWED"
	reasonCredentialNotAllowed       = "CREDENTIAL_NOT_ALLOWED"
	reasonHeaderNotAllowed           = "HEADER_NOT_ALLOWED"
	reasonForwardingHeaderNotAllowed = "FORWARDING_HEADER_NOT_ALLOWED"
	reasonContentTypeNotAllowed      = "CONTENT_TYPE_NOT_ALLOWED"
	reasonContentEncodingNotAllowed  = "CONTENT_ENCODING_NOT_ALLOWED"
	reasonCallerCredentialMalformed  = "CALLER_CREDENTIAL_MALFORMED"
	reasonQueryMalformed             = "QUERY_MALFORMED"
	reasonParameterNotAllowed        = "PARAMETER_NOT_ALLOWED"
	reasonParameterRepeated          = "PARAMETER_REPEATED"
	reasonBodyNotAllowed             = "BODY_NOT_ALLOWED"
	reasonBodyTooLarge               = "BODY_TOO_LARGE"
)

// Limits on the request target. Chat's longest path (a thread read state
// with two user and space ids) is well under 300 bytes; its longest query
// is a filter. Google's front end refuses URLs past about 16 KiB.
const (
	maxPathBytes  = 2048
	maxQueryBytes = 8 << 10
)

// overrideHeaders can make Google run another verb than the one the
// policy saw.
var overrideHeaders = []string{
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
}

// ApplyPatchOverride turns the one override shape Google's Java client
// sends into the verb it means. Java's HttpURLConnection cannot send
// PATCH, so google-http-client's default transport sends POST with
// "X-HTTP-Method-Override: PATCH". Exactly that shape becomes a real
// PATCH before routing: the policy decides on PATCH and Google receives a
// PATCH with no override header, so nothing is left for the two to read
// differently. Any other override is refused by CheckHeaders.
func ApplyPatchOverride(r *http.Request) {
	v := r.Header.Values("X-Http-Method-Override")
	if r.Method != http.MethodPost || len(v) != 1 || v[0] != http.MethodPatch {
		return
	}
	for _, name := range overrideHeaders[1:] {
		if _, ok := r.Header[name]; ok {
			return
		}
	}
	r.Method = http.MethodPatch
	r.Header.Del("X-Http-Method-Override")
}

// credentialHeaders carry a credential or identity other than the caller
// secret the broker reads. A caller must never bring its own.
var credentialHeaders = []string{
	"Cookie", "Proxy-Authorization", "X-Goog-Api-Key", "X-Goog-Iam-Authorization-Token",
	"X-Goog-Iam-Authority-Selector", "X-Goog-Spanner-Database-Role",
}

// billingHeaders move quota, billing or identity of the call elsewhere.
var billingHeaders = []string{
	"X-Goog-User-Project", "X-Goog-Quota-User", "X-Goog-Allowed-Resources", "X-Goog-User-Ip",
	"X-Goog-Api-Version", "X-Goog-Authenticated-User-Email",
}

// Forwarding headers say where a request came from, or (X-Original-Url and
// kin, honoured by some front ends) which path it "really" asked for. The
// broker never trusts them and a caller on loopback has no reason to send
// them. Every X-Forwarded-* header is refused too.
var forwardingHeaders = []string{
	"Forwarded", "Via", "X-Real-Ip", "X-Original-Url", "X-Rewrite-Url",
	"X-Original-Host", "X-Host", "X-Http-Host-Override",
}

// passGoogHeaders are the X-Goog-* request headers forwarded as sent:
// client telemetry and a response field mask, neither of which can change
// what Google does or who pays. Identity, billing and quota headers
// (credentialHeaders, billingHeaders) are refused. Every
// other X-Goog-* header is dropped before forwarding: Google gives them
// meanings the broker cannot check (X-Goog-Request-Params routes a call
// by resource name, which must come from the path the policy saw; upload
// and extension headers change how a body is read). Dropping rather than
// refusing keeps Google's client libraries working, since some send such
// headers on every call, while nothing unchecked reaches Google.
var passGoogHeaders = map[string]bool{"X-Goog-Api-Client": true, "X-Goog-Fieldmask": true}

// refusedParams are Google's system parameters that carry a
// credential, change identity or billing, or change the wire format, by
// their name in lower case: Google's parameter names are case-sensitive
// as far as anyone has documented, but a case variant is refused rather
// than bet on.
var refusedParams = map[string]string{
	"access_token": "a credential in the URL", "oauth_token": "a credential in the URL",
	"bearer_token": "a credential in the URL",
	"key":          "an API key", "$key": "an API key",
	"$ct": "a content-type override", "callback": "a JSONP wrapper", "$callback": "a JSONP wrapper",
	"passwd": "a reserved parameter", "password": "a reserved parameter",
	"quotauser": "a quota identity", "$quotauser": "a quota identity",
	"userproject": "a billing project", "$userproject": "a billing project",
	"$apiversion": "an API version override",
}

// systemParams are the system parameters the broker forwards, by their
// name in lower case, mapped to their one accepted spelling.
var systemParams = map[string]string{
	"alt": "alt", "$alt": "$alt", "fields": "fields", "$fields": "$fields",
	"prettyprint": "prettyPrint", "$prettyprint": "$prettyPrint", "$.xgafv": "$.xgafv",
	"uploadtype": "uploadType", "upload_protocol": "upload_protocol", "upload_id": "upload_id",
}

// repeatable are query parameters Chat defines as repeated. Any other
// parameter given twice is ambiguous: the broker and Google could read
// different values.
var repeatable = map[string]bool{"users": true}

// CheckFraming refuses requests whose HTTP framing or connection handling
// the broker and a front end could read differently, or that would turn
// the connection into something other than requests and responses. Over
// HTTP/1 Go's server has refused most such shapes already (see above); the
// checks that it makes unreachable stay for HTTP/2 and for whatever
// front end the broker is ever put behind.
func CheckFraming(w http.ResponseWriter, r *http.Request) (err error) {
	if len(r.TransferEncoding) > 0 {
		// Go dropped any Content-Length sent with this chunked body (see
		// above), so the handler cannot tell whether there was one. A
		// front end that went by it would take the bytes after the last
		// chunk for the start of another request: never read one.
		w.Header().Set("Connection", "close")
	}
	defer func() {
		if err != nil {
			// After a framing refusal the rest of the connection cannot
			// be trusted to start at a request boundary.
			w.Header().Set("Connection", "close")
		}
	}()
	if !(r.ProtoMajor == 1 && r.ProtoMinor == 1) && r.ProtoMajor != 2 {
		return refusal.New(http.StatusBadRequest, reasonHTTPVersionNotSupported, r.Proto+" is not supported: send the request as HTTP/1.1")
	}
	if len(r.TransferEncoding) > 1 || len(r.TransferEncoding) == 1 && r.TransferEncoding[0] != "chunked" {
		return refusal.New(http.StatusBadRequest, reasonFramingAmbiguous, fmt.Sprintf("Transfer-Encoding %q is not supported: send the body with a Content-Length, or chunked", strings.Join(r.TransferEncoding, ", ")))
	}
	cl := r.Header.Values("Content-Length")
	switch {
	case len(cl) > 1:
		return refusal.New(http.StatusBadRequest, reasonFramingAmbiguous, "more than one Content-Length header: send exactly one")
	case len(cl) == 1 && len(r.TransferEncoding) > 0:
		return refusal.New(http.StatusBadRequest, reasonFramingAmbiguous, "both Content-Length and Transfer-Encoding: send one of them")
	case len(cl) == 1 && cl[0] != strconv.FormatInt(r.ContentLength, 10):
		return refusal.New(http.StatusBadRequest, reasonFramingAmbiguous, fmt.Sprintf("Content-Length %q is not a plain decimal number: send the byte count without sign, spaces or leading zeros", cl[0]))
	}
	if r.Trailer != nil {
		// Declared trailers (the Trailer header) would arrive after the
		// checks below have let the headers through.
		return refusal.New(http.StatusBadRequest, reasonTrailerNotAllowed, "trailer fields are not allowed: send every field as a header, before the body")
	}
	if ex := r.Header.Values("Expect"); len(ex) > 1 || len(ex) == 1 && !strings.EqualFold(ex[0], "100-continue") {
		return refusal.New(http.StatusExpectationFailed, reasonExpectationNotSupported, fmt.Sprintf("Expect %q is not supported: send no Expect header, or Expect: 100-continue", strings.Join(ex, ", ")))
	}
	// An upgrade (h2c, WebSocket) would turn the connection into a tunnel
	// to Google that no later check sees, as httputil.ReverseProxy would
	// splice it.
	_, upgrade := r.Header["Upgrade"]
	_, settings := r.Header["Http2-Settings"]
	if upgrade || settings || connectionHas(r.Header, "upgrade") {
		return refusal.New(http.StatusBadRequest, reasonUpgradeNotAllowed, "protocol upgrades (Upgrade: h2c, websocket) are not allowed: send plain HTTP/1.1 requests to the Chat REST API")
	}
	// Connection may name headers to drop on the way (RFC 9110 §7.6.1),
	// and a proxy that obeys (httputil.ReverseProxy does) would forward
	// "Connection: Content-Type" as a body without the content type the
	// broker checked. Refused, so no one need obey.
	for _, v := range r.Header.Values("Connection") {
		for _, opt := range strings.Split(v, ",") {
			if opt = strings.ToLower(strings.TrimSpace(opt)); opt != "close" && opt != "keep-alive" && opt != "" {
				return refusal.New(http.StatusBadRequest, reasonConnectionOptionNotAllowed, fmt.Sprintf("Connection %q is not allowed: send no Connection header, or Connection: close or keep-alive", opt))
			}
		}
	}
	return nil
}

// connectionHas reports whether a Connection header lists opt.
func connectionHas(h http.Header, opt string) bool {
	for _, v := range h.Values("Connection") {
		for _, o := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(o), opt) {
				return true
			}
		}
	}
	return false
}

// CheckTarget refuses request targets that are not plain origin-form
// paths in canonical form, and returns the decoded path to route on. The
// path forwarded upstream is re-encoded from this value, so Google sees
// exactly the path the policy decided on: every byte it accepts is one
// that url.URL.EscapedPath leaves as it is, so decoding is the identity
// and re-encoding gives back the bytes the caller sent.
func CheckTarget(r *http.Request) (string, error) {
	if r.Method == http.MethodConnect {
		return "", refusal.New(http.StatusMethodNotAllowed, reasonConnectNotAllowed, "CONNECT is not allowed: chat-broker is not a forward proxy; send Chat API requests to it directly")
	}
	if !strings.HasPrefix(r.RequestURI, "/") {
		return "", refusal.New(http.StatusBadRequest, reasonTargetNotOriginForm, "the request target must be a path such as /v1/spaces/AAAA/messages, not an absolute URL: chat-broker always forwards to its configured upstream")
	}
	raw, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	if len(raw) > maxPathBytes {
		return "", refusal.New(http.StatusRequestURITooLong, reasonURITooLong, fmt.Sprintf("the path is %d bytes long: Chat API paths are at most %d bytes; check how the resource name was built", len(raw), maxPathBytes))
	}
	if len(rawQuery) > maxQueryBytes {
		return "", refusal.New(http.StatusRequestURITooLong, reasonURITooLong, fmt.Sprintf("the query string is %d bytes long: send at most %d bytes of query (long filters belong in a shorter form)", len(rawQuery), maxQueryBytes))
	}
	if i := strings.IndexByte(raw, '%'); i >= 0 {
		return "", refusal.New(http.StatusBadRequest, reasonPathNotCanonical, "percent-encoded characters are not allowed in the path; send resource names unescaped (spaces/AAAA/messages/BBBB)")
	}
	if strings.ContainsAny(raw, "\\;") {
		return "", refusal.New(http.StatusBadRequest, reasonPathNotCanonical, `"\" and ";" are not allowed in the path: send the resource name as Chat returned it`)
	}
	for i := 0; i < len(raw); i++ {
		if !pathByte(raw[i]) {
			return "", refusal.New(http.StatusBadRequest, reasonPathCharacterNotAllowed, fmt.Sprintf("the path holds %q at byte %d: Chat API paths use only letters, digits, \"/\" and \"-._~:@+=\"; send the resource name as Chat returned it", raw[i:i+1], i))
		}
	}
	for _, seg := range strings.Split(raw[1:], "/") {
		switch {
		case seg == "":
			return "", refusal.New(http.StatusBadRequest, reasonPathNotCanonical, "empty path segments (// or a trailing /) are not allowed: remove the extra slash")
		case seg == "." || seg == "..":
			return "", refusal.New(http.StatusBadRequest, reasonPathNotCanonical, `dot segments ("." and "..") are not allowed in the path: send the resolved path`)
		case strings.HasSuffix(seg, "."):
			// Some servers drop trailing dots ("AAAA." is "AAAA"), others
			// do not: the broker cannot know which space Google would see.
			return "", refusal.New(http.StatusBadRequest, reasonPathNotCanonical, fmt.Sprintf("path segment %q ends in a dot: remove the trailing dot", seg))
		}
	}
	if err := checkTargetQuery(raw, rawQuery); err != nil {
		return "", err
	}
	return raw, nil
}

// pathByte reports whether c may appear in a path as sent: letters,
// digits, "/" and "-._~:@+=", which is what resource names need (":verb"
// suffixes, emails, base64 media names) and what Go forwards unescaped.
// Anything else (controls, spaces, non-ASCII, quotes, "#", "*", "!",
// "(", ")", "'", "$", "&", ",") is refused rather than escaped.
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("/-._~:@+=", c) >= 0
}

// UploadContinuation reports whether r, for path, sends bytes of a
// resumable upload with PUT (as Google's Java and Python clients do): an
// upload path with an upload_id.
func UploadContinuation(r *http.Request, path string) bool {
	return r.Method == http.MethodPut && uploadPath(path) && r.URL.Query().Get("upload_id") != ""
}

// UploadPath reports whether path is one of the media upload paths
// (/upload/…, /resumable/…), the only ones a resumable session continues on.
func UploadPath(path string) bool { return uploadPath(path) }

// uploadPath reports whether path is one of the media upload paths,
// where uploadType and upload_protocol mean something.
func uploadPath(path string) bool {
	return strings.HasPrefix(path, "/upload/") || strings.HasPrefix(path, "/resumable/")
}

// checkTargetQuery refuses query parameters whose meaning depends on the
// path: upload parameters off the upload paths, and parameters that name
// the resource again, which Google's transcoding could bind in place of
// the path the policy decided on. The rest of the query is checked once
// the request is routed (CheckQuery).
func checkTargetQuery(path, rawQuery string) error {
	if rawQuery == "" {
		return nil
	}
	for i := 0; i < len(rawQuery); i++ {
		if c := rawQuery[i]; c <= ' ' || c >= 0x7f {
			return refusal.New(http.StatusBadRequest, reasonQueryMalformed, fmt.Sprintf("the query string holds %q: percent-encode spaces, control characters and non-ASCII bytes", rawQuery[i:i+1]))
		}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return refusal.New(http.StatusBadRequest, reasonQueryMalformed, "the query string is malformed: percent-encode parameter values (a bare ';' or a bad escape is not allowed)")
	}
	for _, name := range sortedKeys(q) {
		switch strings.ToLower(name) {
		case "uploadtype", "upload_protocol", "upload_id":
			if !uploadPath(path) {
				return refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "query parameter "+name+" is allowed only on the upload paths (/upload/v1/…): remove it")
			}
		case "parent", "resourcename":
			return refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "query parameter "+name+" names a resource: name it in the path only")
		case "name":
			// spaces.findDirectMessage takes the user to look for as
			// ?name=users/…; everywhere else name is the path's.
			if path != "/v1/spaces:findDirectMessage" {
				return refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "query parameter "+name+" names a resource: name it in the path only")
			}
		}
	}
	return nil
}

// CheckHeaders refuses headers that could change the verb, the identity or
// the encoding of a call.
func CheckHeaders(h http.Header) error {
	for name := range h {
		// Some servers (CGI, and anything that maps headers to
		// environment variables) read "_" as "-":
		// X_HTTP_Method_Override would slip past the checks below.
		if strings.IndexByte(name, '_') >= 0 {
			return refusal.New(http.StatusBadRequest, reasonHeaderNameNotAllowed, fmt.Sprintf("header %q is not allowed: header names with \"_\" are read differently by different servers; use \"-\"", name))
		}
	}
	for _, name := range overrideHeaders {
		if _, ok := h[name]; ok {
			return refusal.New(http.StatusBadRequest, reasonMethodOverrideNotAllowed, name+" is not allowed: send the request with the HTTP verb you mean")
		}
	}
	for _, name := range credentialHeaders {
		if _, ok := h[name]; ok {
			return refusal.New(http.StatusBadRequest, reasonCredentialNotAllowed, name+" is not allowed: chat-broker supplies Google credentials itself; send only the caller secret as 'Authorization: Bearer <secret>'")
		}
	}
	for _, name := range billingHeaders {
		if _, ok := h[name]; ok {
			return refusal.New(http.StatusBadRequest, reasonHeaderNotAllowed, name+" is not allowed: it moves the call's quota, billing or identity, which chat-broker sets itself; remove the header")
		}
	}
	for name := range h {
		if hasPrefixFold(name, "X-Forwarded-") {
			return refusal.New(http.StatusBadRequest, reasonForwardingHeaderNotAllowed, name+" is not allowed: call chat-broker directly, not through another proxy")
		}
	}
	for _, name := range forwardingHeaders {
		if _, ok := h[name]; ok {
			return refusal.New(http.StatusBadRequest, reasonForwardingHeaderNotAllowed, name+" is not allowed: call chat-broker directly, not through another proxy")
		}
	}
	cts := h.Values("Content-Type")
	if len(cts) > 1 {
		// The broker checks the first; Google might read another.
		return refusal.New(http.StatusUnsupportedMediaType, reasonContentTypeNotAllowed, "more than one Content-Type header: send exactly one, Content-Type: application/json")
	}
	if ct := strings.ToLower(h.Get("Content-Type")); strings.HasPrefix(ct, "application/grpc") || strings.Contains(ct, "protobuf") {
		return refusal.New(http.StatusUnsupportedMediaType, reasonContentTypeNotAllowed, "gRPC and protobuf bodies are not allowed: use the Chat REST API with JSON")
	}
	// gzip is what Google's Java client sends by default. Anything else
	// (or gzip twice) is a body the broker could not read if it had to.
	if ce := h.Values("Content-Encoding"); len(ce) > 1 || len(ce) == 1 && !strings.EqualFold(strings.TrimSpace(ce[0]), "gzip") && !strings.EqualFold(strings.TrimSpace(ce[0]), "identity") {
		return refusal.New(http.StatusUnsupportedMediaType, reasonContentEncodingNotAllowed, fmt.Sprintf("Content-Encoding %q is not allowed: send the body uncompressed or gzip-compressed", strings.Join(ce, ", ")))
	}
	return nil
}

// DropGoogHeaders removes the X-Goog-* headers not in passGoogHeaders.
// CheckHeaders has refused the identity and billing ones already.
func DropGoogHeaders(h http.Header) {
	for name := range h {
		if hasPrefixFold(name, "X-Goog-") && !passGoogHeaders[http.CanonicalHeaderKey(name)] {
			delete(h, name)
		}
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Bearer returns the credential of the one Authorization header, or ""
// when there is none.
func Bearer(h http.Header) (string, error) {
	auth := h.Values("Authorization")
	switch {
	case len(auth) == 0:
		return "", nil
	case len(auth) > 1:
		return "", refusal.New(http.StatusBadRequest, reasonCredentialNotAllowed, "more than one Authorization header: send exactly one, 'Authorization: Bearer <secret>'")
	}
	scheme, secret, ok := strings.Cut(auth[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" || strings.ContainsAny(secret, " \t") {
		return "", refusal.New(http.StatusUnauthorized, reasonCallerCredentialMalformed, "the Authorization header must be 'Bearer <secret>' with the caller secret from the policy")
	}
	return secret, nil
}

// CheckQuery parses the query of a call of m strictly and refuses
// parameters that bypass the policy, and any name that is neither one of
// m's own parameters nor a system parameter the broker forwards (a
// spelling Google might read as a parameter the broker does not see,
// such as request_id beside requestId, is ambiguous). It returns the
// query to forward, re-encoded from what was parsed.
func CheckQuery(rawQuery string, m *chatapi.Method) (string, error) {
	mediaDownload := m.ID == "media.download"
	if rawQuery == "" {
		return "", nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", refusal.New(http.StatusBadRequest, reasonQueryMalformed, "the query string is malformed: percent-encode parameter values (a bare ';' or a bad escape is not allowed)")
	}
	// In name order, so a query with two faults always gets the same
	// answer.
	for _, name := range sortedKeys(q) {
		vals := q[name]
		if !paramName(name) {
			return "", refusal.New(http.StatusBadRequest, reasonQueryMalformed, fmt.Sprintf("query parameter name %q is malformed: names are letters, digits, \".\", \"_\" and \"$\"", name))
		}
		lower := strings.ToLower(name)
		if why, ok := refusedParams[lower]; ok {
			return "", refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "query parameter "+name+" is not allowed ("+why+"): chat-broker supplies identity and billing itself; remove it")
		}
		canon, system := systemParams[lower]
		if system && canon != name {
			return "", refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "query parameter "+name+" is not allowed: spell it "+canon)
		}
		if !system && !slices.Contains(m.Query, name) {
			return "", unknownParam(name, m)
		}
		if len(vals) > 1 && !repeatable[name] {
			return "", refusal.New(http.StatusBadRequest, reasonParameterRepeated, "query parameter "+name+" is given more than once: give it once")
		}
		for _, v := range vals {
			if !utf8.ValidString(v) || strings.ContainsFunc(v, isControl) {
				return "", refusal.New(http.StatusBadRequest, reasonQueryMalformed, "query parameter "+name+" holds control characters or invalid UTF-8: send printable UTF-8, percent-encoded")
			}
		}
		switch name {
		case "alt", "$alt":
			if vals[0] != "json" && !(vals[0] == "media" && mediaDownload) {
				return "", refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "alt="+vals[0]+" is not allowed: only alt=json, and alt=media on media downloads (/v1/media/…)")
			}
		default:
			if strings.HasPrefix(name, "$") && name != "$.xgafv" && name != "$fields" && name != "$prettyPrint" {
				return "", refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "system parameter "+name+" is not allowed: remove it")
			}
		}
	}
	return q.Encode(), nil
}

// unknownParam refuses a name m does not take, naming the ones it does.
func unknownParam(name string, m *chatapi.Method) *refusal.Error {
	for _, q := range m.Query {
		if strings.EqualFold(q, name) || strings.EqualFold(strings.ReplaceAll(q, "_", ""), strings.ReplaceAll(name, "_", "")) {
			return refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "query parameter "+name+" is not a parameter of "+m.ID+": spell it "+q)
		}
	}
	takes := "takes none"
	if len(m.Query) > 0 {
		takes = "takes " + strings.Join(m.Query, ", ")
	}
	return refusal.New(http.StatusBadRequest, reasonParameterNotAllowed, "query parameter "+name+" is not a parameter of "+m.ID+" (it "+takes+", besides alt, fields and prettyPrint); remove it")
}

// paramName reports whether name looks like a Chat or system parameter
// name ("pageSize", "$.xgafv", "upload_protocol", "message.text").
func paramName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '$':
		default:
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func sortedKeys(q url.Values) []string {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// CheckBody caps the request body at what method m can carry and requires
// JSON where Chat takes JSON. It wraps the body in a MaxBytesReader, so a
// chunked body past the cap fails when read (ReadBody answers 413).
func CheckBody(w http.ResponseWriter, r *http.Request, m *chatapi.Method) error {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if m.MaxBody == 0 {
		return refusal.New(http.StatusBadRequest, reasonBodyNotAllowed, m.ID+" takes no request body: send it without one")
	}
	if r.ContentLength > m.MaxBody {
		return refusal.New(http.StatusRequestEntityTooLarge, reasonBodyTooLarge, fmt.Sprintf("%s takes at most %d bytes of body: send a smaller one", m.ID, m.MaxBody))
	}
	if !Streams(m) {
		ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
		if !strings.EqualFold(strings.TrimSpace(ct), "application/json") {
			return refusal.New(http.StatusUnsupportedMediaType, reasonContentTypeNotAllowed, m.ID+" takes a JSON body: send Content-Type: application/json")
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, m.MaxBody)
	return nil
}

// Streams reports whether m's request body streams (media.upload, up to
// 200 MB) rather than being read whole.
func Streams(m *chatapi.Method) bool { return m.ID == "media.upload" }

// ReadBody reads a JSON body whole (CheckBody capped it), so that it can
// be sent again on a retry and an oversized one, even chunked, is refused
// with 413 before anything goes upstream. It returns nil for no body, or
// an empty one, and for a body that streams (Streams), which it leaves
// unread. cancelled is returned when the caller went away meanwhile.
func ReadBody(r *http.Request, m *chatapi.Method, cancelled error) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || Streams(m) {
		return nil, nil
	}
	buf, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, refusal.New(http.StatusRequestEntityTooLarge, reasonBodyTooLarge, fmt.Sprintf("%s takes at most %d bytes of body: send a smaller one", m.ID, tooBig.Limit))
	case r.Context().Err() != nil:
		return nil, cancelled
	case err != nil:
		return nil, refusal.New(http.StatusBadRequest, "BODY_INCOMPLETE", "the request body could not be read to its end: send it whole")
	}
	r.Body.Close()
	return buf, nil
}

// HopByHop are the headers of one connection (RFC 9110 §7.6.1), never
// forwarded either way. The hygiene checks allow a caller no Connection
// header other than close and keep-alive, so a request names no others;
// the proxy also drops those an upstream's Connection names from its answers.
var HopByHop = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// dropOut are the request headers never forwarded: the connection's own,
// the caller's credential (replaced by the broker's token) and headers
// that change identity, billing or quota. The hygiene checks refuse most
// of them outright; this is the second line. Headers of the broker's own
// (X-Chat-Broker-*) are dropped too.
var dropOut = func() map[string]bool {
	m := map[string]bool{"Authorization": true, "Content-Length": true}
	for h := range HopByHop {
		m[h] = true
	}
	for _, h := range append(append([]string(nil), credentialHeaders...), billingHeaders...) {
		m[http.CanonicalHeaderKey(h)] = true
	}
	return m
}()

// brokerHeaderPrefix starts the headers of the broker's own, such as the
// subject header: read by the broker, never forwarded.
const brokerHeaderPrefix = "X-Chat-Broker-"

// Dropped reports whether the request header name (in canonical form) is
// never forwarded upstream: see dropOut and brokerHeaderPrefix.
func Dropped(name string) bool {
	return dropOut[name] || strings.HasPrefix(name, brokerHeaderPrefix)
}
