package proxy_test

import (
	"context"
	"strings"
	"testing"

	chat "google.golang.org/api/chat/v1"
)

// A requestId is scoped to the caller that sent it: Chat answers a
// repeated requestId with the message first created with it, so two
// callers sending the same id must get two messages (neither reads the
// other's), while one caller sending its id again, as a retry would, gets
// its own message back and creates nothing. The callers use Google's Go
// client, which sends requestId as Chat documents it.
func TestRequestIDScopedToCaller(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	notifier, ops := e.chatService(t, notifierSecret), e.chatService(t, opsSecret)
	create := func(svc *chat.Service, text string) *chat.Message {
		t.Helper()
		m, err := svc.Spaces.Messages.Create("spaces/AAAA", &chat.Message{Text: text}).RequestId("shared-1").Context(ctx).Do()
		if err != nil {
			t.Fatalf("create %q: %v", text, err)
		}
		return m
	}
	first := create(notifier, "from notifier")
	other := create(ops, "from ops")
	if other.Name == first.Name || other.Text != "from ops" {
		t.Errorf("ops, sending notifier's requestId, got %s %q: notifier's message %s", other.Name, other.Text, first.Name)
	}
	again := create(notifier, "sent again")
	if again.Name != first.Name || again.Text != "from notifier" {
		t.Errorf("notifier's repeat got %s %q, want its first message %s back", again.Name, again.Text, first.Name)
	}
	if msgs := e.emu.Messages("spaces/AAAA"); len(msgs) != 2 {
		t.Errorf("%d messages stored, want 2", len(msgs))
	}
	// Chat sees neither caller's id as sent, and the audit keeps it as
	// the caller sent it.
	for _, r := range e.emu.Requests() {
		if strings.Contains(r.RawQuery, "shared-1") {
			t.Errorf("Chat received the caller's requestId as sent: %s", r.RawQuery)
		}
	}
	logs := e.logs.WaitForN(t, `"method":"spaces.messages.create"`, 3)
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"method":"spaces.messages.create"`) && !strings.Contains(line, `"request_id":"shared-1"`) {
			t.Errorf("audit record without the caller's requestId: %s", line)
		}
	}
}
