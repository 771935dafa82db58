package emulator

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// The metadata server, as GKE Workload Identity serves it to a pod: the
// pod's own Google identity (MetadataEmail) and tokens for it, which call
// the IAM Credentials API. Point Google's libraries at it with
// GCE_METADATA_HOST=<the emulator's host:port>.

const (
	metadataPrefix = "/computeMetadata/v1/"
	// podTokenLifetime is the life of the metadata server's tokens.
	podTokenLifetime = time.Hour
)

// serveMetadata serves GET /computeMetadata/v1/instance/service-accounts/
// default/token and …/email (and the project's id), only with the header
// Metadata-Flavor: Google, as the metadata server does.
func (e *Emulator) serveMetadata(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Metadata-Flavor", "Google")
	h.Set("Server", "Metadata Server for VM")
	if r.Header.Get("Metadata-Flavor") != "Google" || r.Header.Get("X-Forwarded-For") != "" {
		// The metadata server's own words; X-Forwarded-For is refused
		// so that a proxy cannot be talked into fetching a token.
		metadataText(w, http.StatusForbidden, "Missing required header \"Metadata-Flavor\": \"Google\"\n")
		return
	}
	if r.Method != http.MethodGet {
		h.Set("Allow", http.MethodGet)
		metadataText(w, http.StatusMethodNotAllowed, "Method not allowed\n")
		return
	}
	switch strings.TrimPrefix(r.URL.Path, metadataPrefix) {
	case "instance/service-accounts/default/email", "instance/service-accounts/" + podEmail + "/email":
		metadataText(w, http.StatusOK, podEmail)
	case "project/project-id":
		metadataText(w, http.StatusOK, projectID)
	case "project/numeric-project-id":
		metadataText(w, http.StatusOK, e.project)
	case "instance/service-accounts/default/token", "instance/service-accounts/" + podEmail + "/token":
		now := e.now()
		tok := e.issueCallerToken(now, podTokenLifetime)
		e.log.Info("emulator: metadata server token issued", "email", podEmail)
		h.Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int64  `json:"expires_in"`
			TokenType   string `json:"token_type"`
		}{tok, int64(math.Ceil(podTokenLifetime.Seconds())), "Bearer"})
	default:
		metadataText(w, http.StatusNotFound, "Not Found\n")
	}
}

func metadataText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/text")
	w.WriteHeader(status)
	w.Write([]byte(body))
}
