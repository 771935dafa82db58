package emulator_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"

	"golang.org/x/oauth2/google"
	"google.golang.org/api/chat/v1"
	"google.golang.org/api/option"

	"github.com/chat-broker/chat-broker/emulator"
)

// A CI job starts the emulator on a local port, writes the key file the
// code under test (or chat-broker) loads, and points the Chat client at
// the emulator instead of chat.googleapis.com.
func Example() {
	emu, err := emulator.New(emulator.Config{Spaces: []string{"spaces/AAAA"}})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()

	// The key file's token_uri is the emulator's /token, so Google's
	// libraries mint their tokens there.
	key := emu.ServiceAccountJSON(srv.URL + "/token")
	dir, err := os.MkdirTemp("", "emulator-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "key.json")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		log.Fatal(err)
	}

	// What the code under test does with the key file and the endpoint.
	ctx := context.Background()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := google.JWTConfigFromJSON(b, "https://www.googleapis.com/auth/chat.bot")
	if err != nil {
		log.Fatal(err)
	}
	svc, err := chat.NewService(ctx, option.WithEndpoint(srv.URL+"/"), option.WithTokenSource(cfg.TokenSource(ctx)))
	if err != nil {
		log.Fatal(err)
	}
	msg, err := svc.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: "build passed"}).Do()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg.Sender.Type, msg.Text)

	// Then assert on what the emulator saw.
	fmt.Println(len(emu.Mints()), "token minted")
	for _, m := range emu.Messages("spaces/AAAA") {
		fmt.Println(m.Sender, m.Text)
	}
	for _, r := range emu.Requests() {
		fmt.Println(r.MethodID, r.Status)
	}
	// Output:
	// BOT build passed
	// 1 token minted
	// users/app build passed
	// spaces.messages.create 200
}
