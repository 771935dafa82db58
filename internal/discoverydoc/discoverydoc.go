package discoverydoc

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/chat-broker/chat-broker/chatapi/discovery"
	"github.com/chat-broker/chat-broker/internal/refusal"
)

var paths = map[string]bool{"/$discovery/rest": true, "/discovery/v1/apis/chat/v1/rest": true}

// Requested reports whether r asks for the discovery document.
func Requested(r *http.Request) bool { return paths[r.URL.Path] }

// parsedDocument is the document's top level, parsed once.
var parsedDocument = sync.OnceValues(func() (map[string]json.RawMessage, error) {
	var top map[string]json.RawMessage
	err := json.Unmarshal(discovery.Document, &top)
	return top, err
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
	top, err := parsedDocument()
	if err != nil { // the embedded document is tested to parse
		return refusal.New(http.StatusInternalServerError, "INTERNAL", "the embedded discovery document does not parse")
	}
	root, _ := json.Marshal("http://" + r.Host + "/")
	doc := make(map[string]json.RawMessage, len(top))
	for k, v := range top {
		doc[k] = v
	}
	doc["rootUrl"], doc["baseUrl"], doc["mtlsRootUrl"] = root, root, root
	body, err := json.Marshal(doc)
	if err != nil {
		return refusal.New(http.StatusInternalServerError, "INTERNAL", "could not write the discovery document")
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
	return nil
}
