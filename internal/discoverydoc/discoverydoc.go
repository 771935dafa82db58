package discoverydoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/chat-broker/chat-broker/chatapi/discovery"
	"github.com/chat-broker/chat-broker/internal/refusal"
)

var paths = map[string]bool{"/$discovery/rest": true, "/discovery/v1/apis/chat/v1/rest": true}

// Requested reports whether r asks for the discovery document.
func Requested(r *http.Request) bool { return paths[r.URL.Path] }

// rootPlaceholder stands for the document's root URLs in the encoding
// made once; each request writes its own root in its place.
const rootPlaceholder = "chat-broker-root-placeholder"

// pieces is the document encoded once, with rootUrl, baseUrl and
// mtlsRootUrl set to rootPlaceholder, split around them: a request
// writes the pieces with its root between them, without encoding the
// whole document again.
var pieces = sync.OnceValues(func() ([][]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(discovery.Document, &top); err != nil {
		return nil, err
	}
	placeholder, _ := json.Marshal(rootPlaceholder)
	top["rootUrl"], top["baseUrl"], top["mtlsRootUrl"] = placeholder, placeholder, placeholder
	body, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	parts := bytes.Split(body, placeholder)
	if len(parts) != 4 {
		return nil, errors.New("the placeholder is not in the document three times")
	}
	return parts, nil
})

// Serve writes the document pointed at http://r.Host/, or returns the
// refusal to write instead.
func Serve(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return refusal.New(http.StatusMethodNotAllowed, "VERB_NOT_ALLOWED", "the discovery document is read with GET")
	}
	if v := r.URL.Query().Get("version"); v != "" && v != "v1" {
		return refusal.New(http.StatusNotFound, "UNKNOWN_METHOD", "chat-broker serves the discovery document of Chat v1 only: ask for version=v1")
	}
	parts, err := pieces()
	if err != nil { // the embedded document is tested to parse
		return refusal.New(http.StatusInternalServerError, "INTERNAL", "the embedded discovery document does not parse")
	}
	root, _ := json.Marshal("http://" + r.Host + "/")
	n := len(root) * (len(parts) - 1)
	for _, p := range parts {
		n += len(p)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		for i, p := range parts {
			if i > 0 {
				w.Write(root)
			}
			w.Write(p)
		}
	}
	return nil
}
