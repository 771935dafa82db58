// Package testenv starts what tests put behind a broker: an emulator of
// Google on a loopback server and a broker holding the emulator's
// service-account key, both stopped when the test ends. Test code only:
// it runs the emulator, which no production package may.
package testenv

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
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
	emu, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	key, err := broker.ParseKey(emu.ServiceAccountJSON(srv.URL + "/token"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Config{Key: key, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	up, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &Google{Emu: emu, URL: up, Broker: b}
}
