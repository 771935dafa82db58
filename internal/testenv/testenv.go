// Package testenv starts what tests put behind a broker: an emulator of
// Google on a loopback server, its service-account key file or its
// metadata server for keyless credentials, and a broker holding the key,
// all stopped when the test ends. Test code only: it runs the emulator,
// which no production package may.
package testenv

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/emulator"
)

// Google is an emulator serving on loopback and a broker minting tokens
// from it.
type Google struct {
	Emu    *emulator.Emulator
	URL    *url.URL // the emulator's server, the proxy's upstream
	Broker *broker.Broker
}

// Start starts an emulator configured by cfg and a broker, logging to
// logger, with the emulator's service-account key.
func Start(t testing.TB, cfg emulator.Config, logger *slog.Logger) *Google {
	t.Helper()
	emu, base := Emulator(t, cfg)
	key, err := broker.ParseKey(emu.ServiceAccountJSON(base + "/token"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Key: key, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	up, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &Google{Emu: emu, URL: up, Broker: b}
}

// Emulator starts an emulator configured by cfg and returns it and the
// URL of its loopback server.
func Emulator(t testing.TB, cfg emulator.Config) (*emulator.Emulator, string) {
	t.Helper()
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return emu, Serve(t, emu)
}

// Serve serves emu on a loopback server, closed when the test ends, and
// returns the server's URL.
func Serve(t testing.TB, emu *emulator.Emulator) string {
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return srv.URL
}

// KeyFile writes emu's service-account key, whose token_uri is the
// emulator serving at base, to sa.json in dir (mode 0600), and returns
// the file's name.
func KeyFile(t testing.TB, emu *emulator.Emulator, base, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(name, emu.ServiceAccountJSON(base+"/token"), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// MetadataOnly makes Application Default Credentials find nothing but
// the metadata server of the emulator serving at base: no key file named
// by the environment, no gcloud credentials.
func MetadataOnly(t testing.TB, base string) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CLOUDSDK_CONFIG", t.TempDir())
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(base, "http://"))
}
