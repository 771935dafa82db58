package emulator

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

// timestamp formats a time as Chat does: RFC 3339 in UTC.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// readBody reads the request's JSON object into a map keyed by camelCase
// field name. Like Google's JSON parser it accepts snake_case names too,
// and it refuses a name the resource does not have.
func (c *call) readBody(resource string, known map[string]bool) (map[string]json.RawMessage, *chatapi.Error) {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, invalidArgument(fmt.Sprintf("chat-broker emulator: %s needs a JSON body with Content-Type application/json, got %q", c.m.ID, ct))
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, c.m.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, chatapi.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("Request payload size exceeds the limit: %d bytes.", tooBig.Limit))
	}
	if err != nil {
		return nil, invalidArgument("chat-broker emulator: read request body: " + err.Error())
	}
	if strings.EqualFold(c.r.Header.Get("Content-Encoding"), "gzip") {
		// Google's Java client gzips request bodies by default.
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, invalidArgument("chat-broker emulator: Content-Encoding gzip, but the body is not gzip data")
		}
		body, err = io.ReadAll(io.LimitReader(zr, c.m.MaxBody+1))
		switch {
		case int64(len(body)) > c.m.MaxBody:
			return nil, chatapi.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("Request payload size exceeds the limit: %d bytes.", c.m.MaxBody))
		case err != nil:
			return nil, invalidArgument("chat-broker emulator: the gzip body is corrupt")
		}
	}
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) == 0 {
		return fields, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, invalidArgument("Invalid JSON payload received. " + err.Error())
	}
	for k, v := range raw {
		name := camelCase(k)
		if !known[name] {
			return nil, invalidArgument(fmt.Sprintf("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", k, resource))
		}
		if string(v) != "null" {
			fields[name] = v
		}
	}
	return fields, nil
}

// readBodyString is readBody and stringField for the body's field name.
func (c *call) readBodyString(resource string, known map[string]bool, name string) (map[string]json.RawMessage, string, *chatapi.Error) {
	fields, err := c.readBody(resource, known)
	if err != nil {
		return nil, "", err
	}
	s, err := stringField(fields, resource, name)
	return fields, s, err
}

// stringField decodes a string field of a body read by readBody.
func stringField(fields map[string]json.RawMessage, resource, name string) (string, *chatapi.Error) {
	raw, ok := fields[name]
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidArgument(fmt.Sprintf("Invalid value at '%s.%s' (TYPE_STRING), %s", resource, snakeCase(name), raw))
	}
	return s, nil
}

// camelCase turns "cards_v2" into "cardsV2".
func camelCase(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if p := parts[i]; p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// snakeCase turns "cardsV2" into "cards_v2".
func snakeCase(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			sb.WriteByte('_')
			r += 'a' - 'A'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// pick returns the fields of a body read by readBody that are named in
// names, as given.
func pick(fields map[string]json.RawMessage, names []string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, k := range names {
		if v, ok := fields[k]; ok {
			out[k] = v
		}
	}
	return out
}

// echoed starts a resource's wire form with the body fields it keeps as
// given.
func echoed(extras map[string]json.RawMessage) map[string]any {
	out := make(map[string]any, len(extras))
	for k, v := range extras {
		out[k] = v
	}
	return out
}
