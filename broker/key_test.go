package broker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	testPrivateKey(t)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(mustECKey(t))
	ecPKCS8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	const fix = "use the JSON key file exactly as downloaded from IAM > Service accounts > Keys"

	tests := []struct {
		desc string
		data []byte
		want string
	}{
		{"authorized_user", keyJSON(t, map[string]any{"type": "authorized_user"}),
			`broker: key: type is "authorized_user", want "service_account": create a key for the Chat app's service account (IAM > Service accounts > Keys)`},
		{"external_account", keyJSON(t, map[string]any{"type": "external_account", "private_key": nil}),
			`broker: key: type is "external_account", want "service_account": create a key for the Chat app's service account (IAM > Service accounts > Keys)`},
		{"no type", keyJSON(t, map[string]any{"type": nil}),
			`broker: key: type is missing, want "service_account": create a key for the Chat app's service account (IAM > Service accounts > Keys)`},
		{"no client_email", keyJSON(t, map[string]any{"client_email": nil}),
			"broker: key: client_email is missing: " + fix},
		{"no private_key", keyJSON(t, map[string]any{"private_key": ""}),
			"broker: key: private_key is missing: " + fix},
		{"private_key not PEM", keyJSON(t, map[string]any{"private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}),
			`broker: key: private_key holds no PEM block (want "-----BEGIN PRIVATE KEY-----"): ` + fix},
		{"private_key PEM of garbage", keyJSON(t, map[string]any{"private_key": pemOf("PRIVATE KEY", []byte("not a key"))}),
			"broker: key: private_key is not a valid PKCS#8 RSA key: " + fix},
		{"PKCS#1 garbage", keyJSON(t, map[string]any{"private_key": pemOf("RSA PRIVATE KEY", []byte("not a key"))}),
			"broker: key: private_key is not a valid PKCS#1 RSA key: " + fix},
		{"EC key", keyJSON(t, map[string]any{"private_key": ecPKCS8}),
			"broker: key: private_key is an ECDSA key, want RSA: " + fix},
		{"certificate", keyJSON(t, map[string]any{"private_key": pemOf("CERTIFICATE", []byte("x"))}),
			`broker: key: private_key is a PEM "CERTIFICATE" block, want "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY" (PKCS#1): ` + fix},
		{"encrypted PKCS#1", keyJSON(t, map[string]any{"private_key": string(pem.EncodeToMemory(&pem.Block{
			Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte("x")}))}),
			"broker: key: private_key is encrypted; the broker needs it unencrypted: " + fix},
		{"private_key a number", keyJSON(t, map[string]any{"private_key": 12345}),
			`broker: key: field "private_key" is a number, want a string: ` + fix},
		{"bad JSON", []byte(`{"type": "service_account",`),
			"broker: key: not valid JSON (syntax error at byte 27): " + fix},
		{"JSON array", []byte(`["service_account"]`),
			"broker: key: not a JSON object: " + fix},
		{"empty", []byte(" \n"),
			"broker: key: empty: want a service-account JSON key; " + fix},
		{"a PEM file", []byte(testPKCS8),
			"broker: key: this is a PEM file, not a service-account JSON key; " + fix},
		{"token_uri relative", keyJSON(t, map[string]any{"token_uri": "/token"}),
			`broker: key: token_uri "/token" is not an absolute http(s) URL: remove it to use https://oauth2.googleapis.com/token, or give the full URL of the token endpoint`},
		{"token_uri ftp", keyJSON(t, map[string]any{"token_uri": "ftp://example.com/token"}),
			`broker: key: token_uri "ftp://example.com/token" is not an absolute http(s) URL: remove it to use https://oauth2.googleapis.com/token, or give the full URL of the token endpoint`},
		{"token_uri no host", keyJSON(t, map[string]any{"token_uri": "https:///token"}),
			`broker: key: token_uri "https:///token" is not an absolute http(s) URL: remove it to use https://oauth2.googleapis.com/token, or give the full URL of the token endpoint`},
		{"token_uri unparseable", keyJSON(t, map[string]any{"token_uri": "http://[::1"}),
			`broker: key: token_uri "http://[::1" is not an absolute http(s) URL: remove it to use https://oauth2.googleapis.com/token, or give the full URL of the token endpoint`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			k, err := ParseKey(tc.data)
			if err == nil {
				t.Fatalf("ParseKey succeeded: %v", k)
			}
			if err.Error() != tc.want {
				t.Errorf("err = %s\nwant  %s", err, tc.want)
			}
			assertNoKeyMaterial(t, err.Error())
		})
	}
}

func TestParseKeyGood(t *testing.T) {
	testPrivateKey(t)
	der, _ := x509.MarshalPKIXPublicKey(&testRSA.PublicKey)
	sum := sha256.Sum256(der)
	wantFP := hex.EncodeToString(sum[:8])

	tests := []struct {
		desc         string
		override     map[string]any
		wantTokenURI string
	}{
		{"PKCS#8", nil, "https://oauth2.googleapis.com/token"},
		{"PKCS#1", map[string]any{"private_key": testPKCS1}, "https://oauth2.googleapis.com/token"},
		{"no token_uri", map[string]any{"token_uri": nil}, "https://oauth2.googleapis.com/token"},
		{"emulator token_uri", map[string]any{"token_uri": "http://127.0.0.1:8081/token"}, "http://127.0.0.1:8081/token"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			k, err := ParseKey(keyJSON(t, tc.override))
			if err != nil {
				t.Fatal(err)
			}
			if k.ClientEmail != testEmail || k.PrivateKeyID != testKeyID || k.ProjectID != "example-project" || k.TokenURI != tc.wantTokenURI {
				t.Errorf("got %#v", k)
			}
			if got := k.Fingerprint(); got != wantFP {
				t.Errorf("Fingerprint = %q, want %q", got, wantFP)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "sa.json")
	bad := filepath.Join(dir, "user.json")
	os.WriteFile(good, keyJSON(t, nil), 0o600)
	os.WriteFile(bad, keyJSON(t, map[string]any{"type": "authorized_user"}), 0o600)

	if k, err := LoadKey(good); err != nil || k.ClientEmail != testEmail {
		t.Errorf("LoadKey(good) = %v, %v", k, err)
	}
	_, err := LoadKey(bad)
	if want := "broker: key " + bad + `: type is "authorized_user", want "service_account": create a key for the Chat app's service account (IAM > Service accounts > Keys)`; err == nil || err.Error() != want {
		t.Errorf("LoadKey(bad): err = %v\nwant %s", err, want)
	}
	missing := filepath.Join(dir, "missing.json")
	_, err = LoadKey(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadKey(missing): err = %v, want ErrNotExist naming the file", err)
	}
	huge := filepath.Join(dir, "huge.json")
	os.WriteFile(huge, bytes.Repeat([]byte(" "), maxKeyFileSize+1), 0o600)
	if _, err := LoadKey(huge); err == nil || err.Error() != "broker: key "+huge+": file is larger than 1 MiB: want a service-account JSON key" {
		t.Errorf("LoadKey(huge): err = %v", err)
	}
}

// TestNothingSecretPrints formats a Key, a Token, and structs that hold
// them (exported or not, by value or pointer) with every common verb and
// with slog's handlers, and looks for key material and the token value.
func TestNothingSecretPrints(t *testing.T) {
	ep := newFakeEndpoint(t)
	b, _, _ := newTestBroker(t, ep, nil)
	key := testKey(t, ep.URL())
	tok := mustToken(t, b, bot)
	value := ep.next().Token
	if value == "" || !strings.Contains(header(tok), value) {
		t.Fatal("test setup: no token value to look for")
	}

	type inner struct {
		key *Key
		k   Key
		tok Token
		pt  *Token
	}
	type outer struct {
		Key   *Key
		Token Token
		in    inner
	}
	things := map[string]any{
		"Key": *key, "*Key": key, "Token": tok, "*Token": &tok,
		"struct": outer{Key: key, Token: tok, in: inner{key: key, k: *key, tok: tok, pt: &tok}},
		"slice":  []any{key, tok},
	}
	for name, v := range things {
		t.Run(name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
				s := fmt.Sprintf(verb, v)
				assertNoKeyMaterial(t, s)
				if strings.Contains(s, value) {
					t.Errorf("%s with %s prints the token: %s", name, verb, s)
				}
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", v, "key", key, "tok", tok)
			slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "v", v, "key", key, "tok", tok)
			s := buf.String()
			assertNoKeyMaterial(t, s)
			if strings.Contains(s, value) {
				t.Errorf("%s through slog prints the token: %s", name, s)
			}
		})
	}

	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(verb, tok); got != "REDACTED" {
			t.Errorf("Token with %s = %q, want REDACTED", verb, got)
		}
	}
	if got := fmt.Sprintf("%q", tok); got != `"REDACTED"` {
		t.Errorf(`Token with %%q = %s, want "REDACTED"`, got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})).Info("minted", "key", key, "token", tok)
	want := `{"level":"INFO","msg":"minted","key":{"client_email":"` + testEmail + `","private_key_id":"` + testKeyID +
		`","fingerprint":"` + key.Fingerprint() + `"},"token":"REDACTED"}` + "\n"
	if buf.String() != want {
		t.Errorf("slog JSON = %s\nwant       %s", buf.String(), want)
	}
	if got, want := key.String(), testEmail+" (key id "+testKeyID+", fingerprint "+key.Fingerprint()+")"; got != want {
		t.Errorf("Key.String() = %q, want %q", got, want)
	}
}

// assertNoKeyMaterial fails if s contains any recognisable part of the
// test private key.
func assertNoKeyMaterial(t *testing.T, s string) {
	t.Helper()
	testPrivateKey(t)
	for _, p := range []string{testPKCS8, testPKCS1} {
		lines := strings.Split(strings.TrimSpace(p), "\n")
		for _, line := range lines[1 : len(lines)-1] { // the base64 body, line by line
			chunk := line[:16]
			asBytes := strings.Trim(fmt.Sprint([]byte(chunk)), "[]") // how %v prints a []byte
			for _, form := range []string{chunk, asBytes, hex.EncodeToString([]byte(chunk))} {
				if strings.Contains(s, form) {
					t.Fatalf("output contains key material: %.200s", s)
				}
			}
		}
	}
	if strings.Contains(s, testRSA.D.String()[:20]) || strings.Contains(s, testRSA.D.Text(16)[:20]) {
		t.Fatalf("output contains key material: %.200s", s)
	}
}

func pemOf(typ string, b []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}))
}

func mustECKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
