package emulator_test

import (
	"fmt"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/emulator"
)

func TestZZScratch(t *testing.T) {
	v := newEnv(t, emulator.Config{Spaces: []string{"spaces/AAAA"}})
	fmt.Printf("%s\n", v.key)
	tok := v.token(t, "", chatapi.ScopeBot)
	for _, r := range [][3]string{
		{"POST", "/v1/spaces/AAAA/messages?messageId=client-x1", `{"text":"hi","thread":{"threadKey":"k"}}`},
		{"GET", "/v1/spaces/AAAA", ""},
		{"GET", "/v1/spaces/AAAA/members", ""},
		{"GET", "/v1/spaces/AAAA/messages", ""},
		{"DELETE", "/v1/spaces/AAAA/messages/client-x1", ""},
		{"GET", "/v1/spaces/BBBB", ""},
	} {
		st, h, b := v.do(t, r[0], r[1], tok, "application/json", r[2])
		fmt.Println(r[0], r[1], st, h.Get("Content-Type"), h.Get("WWW-Authenticate"))
		fmt.Println(string(b))
	}
	st, h, b := v.do(t, "GET", "/v1/spaces/AAAA/messages", tok, "", "")
	fmt.Println(st, h.Get("WWW-Authenticate"), string(b))
}
