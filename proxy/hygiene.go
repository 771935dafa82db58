package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// The request hygiene rules of DESIGN.md step 2 and chat-api.md §D. Each
// rule refuses rather than repairs: a request the broker cannot read one
// way only is not guessed at.

// overrideHeaders can make Google run another verb than the one the
// policy saw.
var overrideHeaders = []string{
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
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

// Forwarding headers say where a request came from. The broker never
// trusts them and a caller on loopback has no reason to send them.
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip"}

// refusedParams are system parameters (chat-api.md §D) that carry a
// credential, change identity or billing, or change the wire format.
var refusedParams = map[string]string{
	"access_token": "a credential in the URL", "oauth_token": "a credential in the URL",
	"key": "an API key", "$key": "an API key",
	"$ct": "a content-type override", "callback": "a JSONP wrapper", "$callback": "a JSONP wrapper",
	"passwd": "a reserved parameter", "password": "a reserved parameter",
	"quotaUser": "a quota identity", "$quotaUser": "a quota identity",
	"userProject": "a billing project", "$userProject": "a billing project",
	"$apiVersion": "an API version override",
}

// repeatable are query parameters Chat defines as repeated. Any other
// parameter given twice is ambiguous: the broker and Google could read
// different values.
var repeatable = map[string]bool{"users": true}

// checkTarget refuses request targets that are not plain origin-form
// paths in canonical form, and returns the decoded path to route on. The
// path forwarded upstream is re-encoded from this value, so Google sees
// exactly the path the policy decided on.
func checkTarget(r *http.Request) (string, error) {
	if r.Method == http.MethodConnect {
		return "", refuse(http.StatusMethodNotAllowed, "CONNECT_NOT_ALLOWED", "CONNECT is not allowed: chat-broker is not a forward proxy; send Chat API requests to it directly")
	}
	if !strings.HasPrefix(r.RequestURI, "/") {
		return "", refuse(http.StatusBadRequest, "TARGET_NOT_ORIGIN_FORM", "the request target must be a path such as /v1/spaces/AAAA/messages, not an absolute URL: chat-broker always forwards to its configured upstream")
	}
	raw := r.RequestURI
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.IndexByte(raw, '%'); i >= 0 {
		return "", refuse(http.StatusBadRequest, "PATH_NOT_CANONICAL", "percent-encoded characters are not allowed in the path; send resource names unescaped (spaces/AAAA/messages/BBBB)")
	}
	if strings.ContainsAny(raw, "\\;") {
		return "", refuse(http.StatusBadRequest, "PATH_NOT_CANONICAL", `"\" and ";" are not allowed in the path`)
	}
	for _, seg := range strings.Split(raw[1:], "/") {
		switch {
		case seg == "":
			return "", refuse(http.StatusBadRequest, "PATH_NOT_CANONICAL", "empty path segments (// or a trailing /) are not allowed")
		case seg == "." || seg == "..":
			return "", refuse(http.StatusBadRequest, "PATH_NOT_CANONICAL", `dot segments ("." and "..") are not allowed in the path`)
		}
	}
	return raw, nil
}

// checkHeaders refuses headers that could change the verb, the identity or
// the encoding of a call.
func checkHeaders(h http.Header) error {
	for _, name := range overrideHeaders {
		if _, ok := h[name]; ok {
			return refuse(http.StatusBadRequest, "METHOD_OVERRIDE_NOT_ALLOWED", name+" is not allowed: send the request with the HTTP verb you mean")
		}
	}
	for _, name := range credentialHeaders {
		if _, ok := h[name]; ok {
			return refuse(http.StatusBadRequest, "CREDENTIAL_NOT_ALLOWED", name+" is not allowed: chat-broker supplies Google credentials itself; send only the caller secret as 'Authorization: Bearer <secret>'")
		}
	}
	for _, name := range forwardingHeaders {
		if _, ok := h[name]; ok {
			return refuse(http.StatusBadRequest, "FORWARDING_HEADER_NOT_ALLOWED", name+" is not allowed: call chat-broker directly, not through another proxy")
		}
	}
	if ct := strings.ToLower(h.Get("Content-Type")); strings.HasPrefix(ct, "application/grpc") || strings.Contains(ct, "protobuf") {
		return refuse(http.StatusUnsupportedMediaType, "CONTENT_TYPE_NOT_ALLOWED", "gRPC and protobuf bodies are not allowed: use the Chat REST API with JSON")
	}
	return nil
}

// bearerOf returns the credential of the one Authorization header, or ""
// when there is none.
func bearerOf(h http.Header) (string, error) {
	auth := h.Values("Authorization")
	switch {
	case len(auth) == 0:
		return "", nil
	case len(auth) > 1:
		return "", refuse(http.StatusBadRequest, "CREDENTIAL_NOT_ALLOWED", "more than one Authorization header: send exactly one, 'Authorization: Bearer <secret>'")
	}
	scheme, secret, ok := strings.Cut(auth[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" || strings.ContainsAny(secret, " \t") {
		return "", refuse(http.StatusUnauthorized, "CALLER_CREDENTIAL_MALFORMED", "the Authorization header must be 'Bearer <secret>' with the caller secret from the policy")
	}
	return secret, nil
}

// checkQuery parses the query strictly and refuses parameters that bypass
// the policy. It returns the query to forward, re-encoded from what was
// parsed.
func checkQuery(rawQuery string, mediaDownload bool) (string, error) {
	if rawQuery == "" {
		return "", nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", refuse(http.StatusBadRequest, "QUERY_MALFORMED", "the query string is malformed: percent-encode parameter values (a bare ';' or a bad escape is not allowed)")
	}
	for name, vals := range q {
		if why, ok := refusedParams[name]; ok {
			return "", refuse(http.StatusBadRequest, "PARAMETER_NOT_ALLOWED", "query parameter "+name+" is not allowed ("+why+"): chat-broker supplies identity and billing itself")
		}
		if len(vals) > 1 && !repeatable[name] {
			return "", refuse(http.StatusBadRequest, "PARAMETER_REPEATED", "query parameter "+name+" is given more than once: give it once")
		}
		switch name {
		case "alt", "$alt":
			if vals[0] != "json" && !(vals[0] == "media" && mediaDownload) {
				return "", refuse(http.StatusBadRequest, "PARAMETER_NOT_ALLOWED", "alt="+vals[0]+" is not allowed: only alt=json, and alt=media on media downloads (/v1/media/…)")
			}
		default:
			if strings.HasPrefix(name, "$") && name != "$.xgafv" && name != "$fields" && name != "$prettyPrint" {
				return "", refuse(http.StatusBadRequest, "PARAMETER_NOT_ALLOWED", "system parameter "+name+" is not allowed")
			}
		}
	}
	return q.Encode(), nil
}
