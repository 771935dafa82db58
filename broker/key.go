package broker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"golang.org/x/oauth2/google"
)

// maxKeyFileSize bounds what LoadKey reads. A service-account key is about
// 2.3 KB; anything near this size is the wrong file.
const maxKeyFileSize = 1 << 20

// Key is a loaded service-account key. Its exported fields are safe to log.
// The private key is kept unexported inside a closure: String, GoString,
// LogValue and Format never print it, and neither can fmt's raw printing
// of a struct that holds a Key in an unexported field (where fmt cannot
// call Format and walks the fields by reflection instead), because
// reflection shows a func only as an address.
//
// A Key is immutable once ParseKey returns it, and safe for concurrent use.
type Key struct {
	// ClientEmail is the service account's email: the JWT issuer.
	ClientEmail string
	// PrivateKeyID is the key's id; it goes into the JWT header as "kid".
	PrivateKeyID string
	// TokenURI is where tokens are minted. The emulator writes its own URL
	// here.
	TokenURI string
	// ProjectID is the Google Cloud project that owns the service account.
	ProjectID string

	fingerprint string        // of the public key; not secret
	privatePEM  func() []byte // the private key as found in the key file, for x/oauth2/jwt
	acct        string        // account(), made once
}

// keyFile is the subset of the service-account JSON that the broker reads.
type keyFile struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

const keyFix = "use the JSON key file exactly as downloaded from IAM > Service accounts > Keys"

// ParseKey parses a service-account JSON key.
//
// Anything but "type": "service_account" is an error that says what it got
// and how to fix it. A missing client_email or private_key, a private_key
// that is not an RSA key in PEM form (PKCS#1 or PKCS#8), malformed JSON and
// a token_uri that is not an absolute http(s) URL are errors too. token_uri
// defaults to https://oauth2.googleapis.com/token. No error ever contains
// key material.
func ParseKey(data []byte) (*Key, error) {
	k, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("broker: key: %w", err)
	}
	return k, nil
}

// LoadKey reads and parses the service-account JSON key in the file at
// path. Its errors name the file.
func LoadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("broker: key: %w", err) // *PathError names the file
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("broker: key: %w", err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("broker: key %s: file is larger than 1 MiB: want a service-account JSON key", path)
	}
	k, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("broker: key %s: %w", path, err)
	}
	return k, nil
}

// parseKey returns errors without the "broker: key" prefix, which its
// callers add with or without the file name.
func parseKey(data []byte) (*Key, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("empty: want a service-account JSON key; " + keyFix)
	}
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return nil, errors.New("this is a PEM file, not a service-account JSON key; " + keyFix)
	}
	var kf keyFile
	if err := json.Unmarshal(trimmed, &kf); err != nil {
		return nil, jsonError(err)
	}
	switch kf.Type {
	case "service_account":
	case "":
		return nil, errors.New(`type is missing, want "service_account": create a key for the Chat app's service account (IAM > Service accounts > Keys)`)
	default:
		return nil, fmt.Errorf(`type is %q, want "service_account": create a key for the Chat app's service account (IAM > Service accounts > Keys)`, truncate(kf.Type, 64))
	}
	if kf.ClientEmail == "" {
		return nil, errors.New("client_email is missing: " + keyFix)
	}
	if kf.PrivateKey == "" {
		return nil, errors.New("private_key is missing: " + keyFix)
	}
	priv, err := parsePrivateKey([]byte(kf.PrivateKey))
	if err != nil {
		return nil, err
	}
	tokenURI := kf.TokenURI
	if tokenURI == "" {
		tokenURI = google.JWTTokenURL
	}
	if u, err := url.Parse(tokenURI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("token_uri %q is not an absolute http(s) URL: remove it to use %s, or give the full URL of the token endpoint", truncate(tokenURI, 200), google.JWTTokenURL)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, errors.New("private_key: cannot encode its public half") // not reachable for a valid RSA key
	}
	sum := sha256.Sum256(der)
	pemBytes := []byte(kf.PrivateKey)
	return &Key{
		ClientEmail:  kf.ClientEmail,
		PrivateKeyID: kf.PrivateKeyID,
		TokenURI:     tokenURI,
		ProjectID:    kf.ProjectID,
		fingerprint:  hex.EncodeToString(sum[:8]),
		privatePEM:   func() []byte { return pemBytes },
		acct:         kf.ClientEmail + "\x00" + tokenURI,
	}, nil
}

// jsonError describes a decoding failure without quoting the input:
// encoding/json's own messages quote the offending character or number,
// which could be part of the key.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not valid JSON (syntax error at byte %d): %s", syn.Offset, keyFix)
	case errors.As(err, &typ) && typ.Field == "":
		return errors.New("not a JSON object: " + keyFix)
	case errors.As(err, &typ):
		got, _, _ := strings.Cut(typ.Value, " ") // "number 12" -> "number"
		return fmt.Errorf("field %q is a %s, want a string: %s", typ.Field, got, keyFix)
	default:
		return errors.New("not valid JSON: " + keyFix)
	}
}

// parsePrivateKey accepts what x/oauth2/jwt accepts: one PEM block holding
// an RSA key in PKCS#8 or PKCS#1 form. Its errors name the PEM block type
// (a header, not key material) and never the underlying parser's message.
func parsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New(`private_key holds no PEM block (want "-----BEGIN PRIVATE KEY-----"): ` + keyFix)
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("private_key is not a valid PKCS#8 RSA key: " + keyFix)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return nil, errors.New("private_key is an ECDSA key, want RSA: " + keyFix)
		case ed25519.PrivateKey:
			return nil, errors.New("private_key is an Ed25519 key, want RSA: " + keyFix)
		default:
			return nil, errors.New("private_key is not an RSA key: " + keyFix)
		}
	case "RSA PRIVATE KEY":
		if _, encrypted := block.Headers["Proc-Type"]; encrypted {
			return nil, errors.New("private_key is encrypted; the broker needs it unencrypted: " + keyFix)
		}
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("private_key is not a valid PKCS#1 RSA key: " + keyFix)
		}
		return k, nil
	default:
		return nil, fmt.Errorf(`private_key is a PEM %q block, want "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1): %s`, truncate(block.Type, 64), keyFix)
	}
}

// Fingerprint returns a short hex SHA-256 of the key's public half (its
// PKIX DER form). It identifies the key in logs and metrics without
// revealing anything secret.
func (k *Key) Fingerprint() string {
	if k == nil {
		return ""
	}
	return k.fingerprint
}

// String describes the key by account, key id and fingerprint.
func (k Key) String() string {
	return fmt.Sprintf("%s (key id %s, fingerprint %s)", k.ClientEmail, k.PrivateKeyID, k.Fingerprint())
}

// GoString prints the public fields; the private key shows as REDACTED.
func (k Key) GoString() string {
	return fmt.Sprintf("broker.Key{ClientEmail:%q, PrivateKeyID:%q, TokenURI:%q, ProjectID:%q, privateKey:REDACTED}",
		k.ClientEmail, k.PrivateKeyID, k.TokenURI, k.ProjectID)
}

// Format makes every fmt verb go through String or GoString, so that no
// verb (%x, %d, %+v...) falls back to printing the struct's fields.
func (k Key) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, k.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", k.String())
	default:
		io.WriteString(f, k.String())
	}
}

// LogValue logs the account, key id and fingerprint.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("client_email", k.ClientEmail),
		slog.String("private_key_id", k.PrivateKeyID),
		slog.String("fingerprint", k.Fingerprint()),
	)
}

// account identifies whose tokens a key mints and where: cached tokens
// stay good across a key rotation within one account, but not across a
// change of account or token endpoint.
func (k *Key) account() string {
	if k.acct != "" {
		return k.acct
	}
	return k.ClientEmail + "\x00" + k.TokenURI
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
