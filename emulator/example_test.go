package emulator_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

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

// The chat-broker emulator command runs the emulator as its own process;
// tests in any language set it up through its control API.
func Example_controlAPI() {
	emu, err := emulator.New(emulator.Config{Spaces: []string{"spaces/AAAA"}})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	defer srv.Close()

	for _, c := range []struct{ path, body string }{
		{"/emulator/approvals", `{"scope":"chat.app.spaces.create","approved":true}`},
		{"/emulator/delegation", `{"user":"alice@example.com","enabled":true}`},
		{"/emulator/faults", `{"method":"spaces.messages.create","status":503,"times":2}`},
	} {
		resp, err := http.Post(srv.URL+c.path, "application/json", strings.NewReader(c.body))
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(resp.StatusCode, " ", string(b))
	}
	// Output:
	// 200 {"approved":["chat.app.spaces.create"]}
	// 200 {"allUsers":false,"users":["alice@example.com"]}
	// 200 {"faults":[{"method":"spaces.messages.create","status":503,"retryAfterSeconds":0,"times":2,"left":2}]}
}
