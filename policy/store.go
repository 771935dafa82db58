package policy

import "sync/atomic"

// Store holds the current policy. Readers call Load for every request and
// use that one *Policy for the whole request; Swap replaces it atomically,
// so a request never sees half of one policy and half of another. Safe for
// concurrent use.
type Store struct {
	p atomic.Pointer[Policy]
}

// NewStore returns a store holding p. p may be nil, in which case Load
// returns nil until the first Swap.
func NewStore(p *Policy) *Store {
	s := &Store{}
	s.p.Store(p)
	return s
}

// Load returns the current policy.
func (s *Store) Load() *Policy { return s.p.Load() }

// Swap makes p the current policy. A nil p is ignored: the store keeps the
// last good policy rather than deny everything because a reload failed.
func (s *Store) Swap(p *Policy) {
	if p != nil {
		s.p.Store(p)
	}
}

// Reload parses the file at path and swaps it in if it is valid. On
// error the current policy stays, and the error says why (an *Error for a
// file that does not validate).
func (s *Store) Reload(path string) error {
	p, err := Load(path)
	if err != nil {
		return err
	}
	s.Swap(p)
	return nil
}
