package inbound

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/refusal"
)

// The seed corpora live in testdata/fuzz/FuzzTarget and
// testdata/fuzz/FuzzQuery, so `go test` runs every seed as a plain test.
// To search further: go test -run='^$' -fuzz=FuzzTarget -fuzztime=3m ./proxy/

// FuzzTarget feeds a verb and a request target, parsed the way Go's
// server parses them, to CheckTarget and the router. Neither may panic,
// and whatever CheckTarget accepts is a canonical path that the router
// and the upstream request read the same way, and that routes to at most
// one catalog method.
func FuzzTarget(f *testing.F) {
	f.Add("GET", "/v1/spaces/AAAA/messages/M1")
	f.Add("POST", "/v1/spaces/AAAA/messages?requestId=r1")
	router := chatapi.NewRouter()
	routes := catalogRoutes()
	f.Fuzz(func(t *testing.T, verb, target string) {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(verb + " " + target + " HTTP/1.1\r\nHost: chat-broker\r\n\r\n")))
		if err != nil {
			return // Go's server answers 400 before the broker runs
		}
		path, err := CheckTarget(r)
		if err != nil {
			var ref *refusal.Error
			if !errors.As(err, &ref) || ref.Reason == "" || ref.Message == "" || ref.Code < 400 || ref.Code > 499 {
				t.Fatalf("CheckTarget(%s %q) = %v, want a refusal with a reason, a message and a 4xx code", verb, target, err)
			}
			return
		}

		// Canonical.
		if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.Contains(path, "//") ||
			strings.Contains(path+"/", "/./") || strings.Contains(path+"/", "/../") || strings.ContainsAny(path, "%\\;?#") {
			t.Fatalf("accepted %q: not a canonical path", path)
		}
		for _, seg := range strings.Split(path[1:], "/") {
			if seg == "" || strings.HasSuffix(seg, ".") {
				t.Fatalf("accepted %q: segment %q", path, seg)
			}
		}
		for i := 0; i < len(path); i++ {
			if c := path[i]; c <= ' ' || c >= 0x7f {
				t.Fatalf("accepted %q: byte %#x", path, c)
			}
		}
		// What the router reads is what the policy decides on, and what
		// goes upstream is the same bytes.
		if r.URL.Path != path || r.URL.RawPath != "" {
			t.Fatalf("accepted %q but the router reads Path %q RawPath %q", path, r.URL.Path, r.URL.RawPath)
		}
		if esc := (&url.URL{Path: path}).EscapedPath(); esc != path {
			t.Fatalf("accepted %q, forwarded as %q", path, esc)
		}
		out := &url.URL{Scheme: "https", Host: "chat.googleapis.com", Path: path}
		if back, err := url.ParseRequestURI(out.RequestURI()); err != nil || back.Path != path {
			t.Fatalf("accepted %q, Google would read %v (%v)", path, back, err)
		}

		// One method at most, with the verb given and with every verb
		// the catalog uses.
		for _, v := range []string{r.Method, "GET", "POST", "PUT", "PATCH", "DELETE"} {
			rv := r.Clone(r.Context())
			rv.Method = v
			m, _, err := router.Match(rv)
			ids := routes.match(rv)
			switch {
			case err == nil:
				if len(ids) != 1 || ids[0] != m.ID {
					t.Fatalf("%s %s routes to %s, but the catalog matches %q", v, path, m.ID, ids)
				}
			case errors.Is(err, chatapi.ErrNotFound), errors.Is(err, chatapi.ErrVerbNotAllowed):
				if len(ids) != 0 {
					t.Fatalf("%s %s routes nowhere, but the catalog matches %q", v, path, ids)
				}
			default:
				t.Fatalf("router: %v", err)
			}
		}

		// The query parameters whose meaning depends on the path.
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			t.Fatalf("accepted the unparsable query %q", r.URL.RawQuery)
		}
		for name := range q {
			switch strings.ToLower(name) {
			case "uploadtype", "upload_protocol":
				if !uploadPath(path) {
					t.Fatalf("accepted %s on %s", name, path)
				}
			case "parent", "resourcename":
				t.Fatalf("accepted %s on %s", name, path)
			case "name":
				if path != "/v1/spaces:findDirectMessage" {
					t.Fatalf("accepted %s on %s", name, path)
				}
			}
		}
	})
}

// FuzzQuery feeds a raw query to CheckQuery. It may not panic, and a
// query it accepts, once parsed, holds no refused parameter, no unknown
// system parameter, no repeated parameter, no control character and no
// alt other than json (or media on downloads), and is forwarded as it
// was parsed.
func FuzzQuery(f *testing.F) {
	f.Add("alt=json&fields=name", false)
	f.Add("pageSize=10&request_id=x", false)
	f.Add("alt=media", true)
	list, _ := chatapi.Lookup("spaces.messages.list")
	download, _ := chatapi.Lookup("media.download")
	f.Fuzz(func(t *testing.T, raw string, mediaDownload bool) {
		m := list
		if mediaDownload {
			m = download
		}
		fwd, err := CheckQuery(raw, m)
		if err != nil {
			var ref *refusal.Error
			if !errors.As(err, &ref) || ref.Reason == "" || ref.Message == "" || ref.Code != http.StatusBadRequest {
				t.Fatalf("CheckQuery(%q) = %v, want a 400 refusal with a reason and a message", raw, err)
			}
			return
		}
		got, err := url.ParseQuery(fwd)
		if err != nil {
			t.Fatalf("CheckQuery(%q) forwards %q, which does not parse: %v", raw, fwd, err)
		}
		if want, _ := url.ParseQuery(raw); !(len(got) == 0 && len(want) == 0) && !reflect.DeepEqual(got, want) {
			t.Fatalf("CheckQuery(%q) forwards %v, want what it parsed, %v", raw, got, want)
		}
		for name, vals := range got {
			lower := strings.ToLower(name)
			if _, bad := refusedParams[lower]; bad {
				t.Fatalf("accepted %q: %s is refused", raw, name)
			}
			canon, system := systemParams[lower]
			if system && canon != name {
				t.Fatalf("accepted %q: %s is spelled %s", raw, name, canon)
			}
			if !system && !slices.Contains(m.Query, name) {
				t.Fatalf("accepted %q: %s is no parameter of %s", raw, name, m.ID)
			}
			if strings.HasPrefix(name, "$") && name != "$.xgafv" && name != "$fields" && name != "$prettyPrint" && name != "$alt" {
				t.Fatalf("accepted %q: system parameter %s", raw, name)
			}
			if len(vals) > 1 && !repeatable[name] {
				t.Fatalf("accepted %q: %s repeated", raw, name)
			}
			if !paramName(name) {
				t.Fatalf("accepted %q: name %q", raw, name)
			}
			for _, v := range vals {
				if !utf8.ValidString(v) || strings.ContainsFunc(v, isControl) {
					t.Fatalf("accepted %q: value %q", raw, v)
				}
			}
			if name == "alt" || name == "$alt" {
				if v := vals[0]; v != "json" && (v != "media" || !mediaDownload) {
					t.Fatalf("accepted %q: alt=%s (media download %v)", raw, v, mediaDownload)
				}
			}
		}
	})
}

// catalogRouteSet matches a request against each catalog path on its own,
// to check that the router's one answer is the only possible one.
type catalogRouteSet []struct {
	id string
	r  *mux.Router
}

// catalogRoutes builds one router per catalog path, translating plain
// {name} variables as chatapi.NewRouter does (one segment, no ":").
func catalogRoutes() catalogRouteSet {
	plain := regexp.MustCompile(`\{([A-Za-z]+)\}`)
	var set catalogRouteSet
	for _, m := range chatapi.Methods() {
		for _, p := range m.Paths {
			r := mux.NewRouter().SkipClean(true)
			r.Path(plain.ReplaceAllString(p, "{$1:[^/:]+}")).Methods(m.Verb)
			set = append(set, struct {
				id string
				r  *mux.Router
			}{m.ID, r})
		}
	}
	return set
}

func (s catalogRouteSet) match(r *http.Request) []string {
	var ids []string
	for _, route := range s {
		var rm mux.RouteMatch
		if route.r.Match(r, &rm) {
			ids = append(ids, route.id)
		}
	}
	return ids
}
