package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Readers that Load once per request always see one whole policy, while a
// writer swaps two policies that disagree. Run with -race.
func TestStoreSwapConcurrent(t *testing.T) {
	allowing := mustParse(t, "version: 1\ncallers:"+okCaller)
	denying := mustParse(t, "version: 1\ncallers:"+strings.Replace(okCaller, "spaces: [spaces/A]", "spaces: [spaces/B]", 1))
	create, _ := chatapi.Lookup("spaces.messages.create")
	s := NewStore(allowing)

	const readers, swaps = 8, 2000
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, readers)
	for range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				p := s.Load()
				c, ok := p.CallerBySecret("secret-4")
				if !ok {
					errs <- "caller not found"
					return
				}
				if d := p.Decide(c, create, "spaces/A", ""); d.Allow != (p == allowing) {
					errs <- "decision does not match the policy it came from: " + d.Reason
					return
				}
			}
		})
	}
	for i := range swaps {
		if i%2 == 0 {
			s.Swap(denying)
		} else {
			s.Swap(allowing)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if s.Load() != allowing {
		t.Error("after an even number of swaps the store does not hold the first policy")
	}
}

func TestStoreKeepsLastGood(t *testing.T) {
	if NewStore(nil).Load() != nil {
		t.Error("NewStore(nil).Load() is not nil")
	}
	good := mustParse(t, "version: 1\ncallers:"+okCaller)
	s := NewStore(good)
	s.Swap(nil)
	if s.Load() != good {
		t.Error("Swap(nil) replaced the policy")
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var pe *Error
	if err := s.Reload(bad); !errors.As(err, &pe) {
		t.Errorf("Reload(bad) = %v, want an *Error", err)
	}
	if s.Load() != good {
		t.Error("a failed Reload replaced the policy")
	}

	next := filepath.Join(dir, "next.yaml")
	if err := os.WriteFile(next, []byte(secrets.Replace("version: 1\ncallers:"+okCaller)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(next); err != nil {
		t.Fatalf("Reload(next) = %v", err)
	}
	if p := s.Load(); p == good || p.File() != next {
		t.Errorf("after Reload the store holds %v, want the policy from %s", p.File(), next)
	}
}
