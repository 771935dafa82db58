package inbound

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/chat-broker/chat-broker/internal/refusal"
)

const (
	reasonBodyUnreadable = "BODY_UNREADABLE"
)

// Decoded returns body as the upstream will read it: gunzipped when
// encoding is gzip (what Google's Java client sends by default), at most
// max bytes. A body that inflates past max (a gzip bomb) is a 413; one
// that is not gzip, a 400. The body sent upstream stays as it came; this
// copy is only for the broker to read.
func Decoded(body []byte, encoding string, max int64) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return body, nil
	case "gzip":
	default: // CheckHeaders refused anything else
		return nil, refusal.New(http.StatusUnsupportedMediaType, reasonContentEncodingNotAllowed, "Content-Encoding "+encoding+" is not allowed: send the body uncompressed or gzip-compressed")
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, refusal.New(http.StatusBadRequest, reasonBodyUnreadable, "the body says Content-Encoding: gzip but is not gzip data: compress it with gzip, or send it uncompressed without the header")
	}
	zr.Multistream(false)
	out, err := io.ReadAll(io.LimitReader(zr, max+1))
	switch {
	case int64(len(out)) > max:
		return nil, refusal.New(http.StatusRequestEntityTooLarge, reasonBodyTooLarge, fmt.Sprintf("the body inflates to more than %d bytes: send a smaller one", max))
	case err != nil:
		return nil, refusal.New(http.StatusBadRequest, reasonBodyUnreadable, "the gzip body is corrupt or cut short: send it whole")
	}
	return out, nil
}

// JSONString reads the string field name from the top level of a JSON
// object, as the upstream would. A body the broker might read otherwise
// than Google is refused (400): not one JSON object, the field twice, the
// field in another letter case (Go matches names without regard to case,
// Google does not), or a value that is not a string. A body without the
// field gives "", false.
func JSONString(body []byte, name string) (string, bool, error) {
	bad := func(why string) error {
		return refusal.New(http.StatusBadRequest, reasonBodyUnreadable, "the JSON body "+why)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false, bad("is not a JSON object: send {\"" + name + "\": …}")
	}
	var value string
	found := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false, bad("is malformed: send valid JSON")
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", false, bad("is malformed: send valid JSON")
		}
		switch {
		case key == name:
			if found {
				return "", false, bad(fmt.Sprintf("has %q twice: give it once", name))
			}
			if err := json.Unmarshal(raw, &value); err != nil {
				return "", false, bad(fmt.Sprintf("has a %q that is not a string", name))
			}
			found = true
		case strings.EqualFold(key, name):
			return "", false, bad(fmt.Sprintf("has %q: write it %q", key, name))
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return "", false, bad("is malformed: send valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", false, bad("has more after its object: send one JSON object")
	}
	return value, found, nil
}
