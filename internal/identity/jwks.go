package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// jwksMinRefetch is how soon after one fetch of the issuer's keys a token
// naming an unknown key id may cause another. Without it every forged token
// with a made-up kid would cost a request to the API server. A real
// rotation waits at most this long: the API server publishes a new key
// before it signs with it, and kubelet hands pods new tokens over minutes.
const jwksMinRefetch = 5 * time.Second

// jwtAlgorithms are the signature algorithms a key set will parse. The
// verifier has already held a token to the issuer's advertised algorithms
// (asymmetric only) before it reaches the key set.
var jwtAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.EdDSA,
}

// issuerKeySet is the cluster issuer's published keys, implementing
// go-oidc's KeySet. It replaces go-oidc's RemoteKeySet, which answers the
// fetching caller before it stores what it fetched: for an instant after a
// rotation its key set still holds the old keys, so a new token can be
// refused and a rotated-out key can still verify. Here a fetch is stored
// before anyone is answered, concurrent fetches are collapsed into one,
// and an unknown key id fetches again at most once per jwksMinRefetch.
//
// It is not github.com/MicahParks/keyfunc/v3, which was weighed for the
// job: keyfunc hands golang-jwt/jwt/v5 a Keyfunc, while the claims here
// (issuer, audience, expiry, algorithms) are checked by go-oidc's
// verifier, which wants a KeySet; keyfunc fetches when it is built and
// keeps a refresh goroutine for its life, where this set fetches on
// first use (a broker that starts before the API server answers still
// starts) and runs nothing in the background. Gluing the two would put
// two libraries where one small, tested type stands.
type issuerKeySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	flight singleflight.Group

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // when the last fetch started, successful or not; zero before the first
}

func newIssuerKeySet(url string, client *http.Client, now func() time.Time) *issuerKeySet {
	return &issuerKeySet{url: url, client: client, now: now}
}

// VerifySignature checks jwt's signature against the key its kid names
// and returns the payload. Errors never quote the token (nor its kid,
// which the sender chooses).
func (s *issuerKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, jwtAlgorithms)
	if err != nil {
		return nil, errors.New("malformed JWS")
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%d signatures, want 1", len(jws.Signatures))
	}
	kid := jws.Signatures[0].Header.KeyID

	keys, _ := s.snapshot()
	payload, known, ok := verifyWith(jws, keys, kid)
	if !ok && !known {
		// No key by that id: a rotation, perhaps. A known key that does
		// not match is a forgery or a corrupted token; fetching would not
		// help.
		if keys, err = s.refresh(ctx); err != nil {
			return nil, err
		}
		payload, known, ok = verifyWith(jws, keys, kid)
	}
	switch {
	case ok:
		return payload, nil
	case known:
		return nil, errors.New("signature does not match the issuer's key")
	}
	_, fetched := s.snapshot()
	return nil, fmt.Errorf("signed with a key the issuer does not publish (of %d keys fetched %s ago; an unknown key fetches them again at most every %s): a token from another cluster, or signed by a key rotated out",
		len(keys), s.now().Sub(fetched).Round(time.Second), jwksMinRefetch)
}

// verifyWith tries the keys kid names (every key when kid is empty).
// known reports whether any key was tried.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known, ok bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = true
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true, true
		}
	}
	return nil, known, false
}

func (s *issuerKeySet) snapshot() ([]jose.JSONWebKey, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.fetched
}

// refresh fetches the keys again unless a fetch started less than
// jwksMinRefetch ago, and returns the keys held after. Callers arriving
// during a fetch share it; one leaving does not cancel it for the others.
func (s *issuerKeySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := s.flight.DoChan("", func() (any, error) {
		s.mu.Lock()
		keys, fetched := s.keys, s.fetched
		now := s.now()
		if !fetched.IsZero() && now.Sub(fetched) < jwksMinRefetch {
			s.mu.Unlock()
			return keys, nil
		}
		s.fetched = now
		s.mu.Unlock()

		fresh, err := s.fetch()
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.keys = fresh
		s.mu.Unlock()
		return fresh, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]jose.JSONWebKey), nil
	}
}

// fetch reads the key set. It runs with its own deadline (the client's
// timeout), not a caller's context: the result serves every caller.
func (s *issuerKeySet) fetch() ([]jose.JSONWebKey, error) {
	req, err := http.NewRequest(http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("keys URL %s: %w", s.url, err)
	}
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the issuer's keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the issuer's keys from %s: %w", s.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the issuer's keys from %s: %s: %s", s.url, resp.Status, truncate(string(body), 200))
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("the issuer's keys at %s are not a JSON Web Key Set: %w", s.url, err)
	}
	// A key published for encryption signs nothing.
	keys := set.Keys[:0]
	for _, k := range set.Keys {
		if k.Use == "" || k.Use == "sig" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}
