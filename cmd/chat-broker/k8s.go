package main

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/chat-broker/chat-broker/internal/identity"
)

// k8sConfig is the Kubernetes service-account identity flags.
type k8sConfig struct {
	issuer, audience  string
	caFile, tokenFile string
}

// lazyVerifier verifies service-account tokens once the cluster issuer has
// answered. The broker starts without it, so callers identified by a
// secret or a uid are not held hostage by an unreachable API server; until
// then, service-account callers get a 401 that says why.
type lazyVerifier struct {
	v       atomic.Pointer[identity.ServiceAccountVerifier]
	lastErr atomic.Value // string
}

func (l *lazyVerifier) Verify(ctx context.Context, token string) (string, error) {
	v := l.v.Load()
	if v == nil {
		why, _ := l.lastErr.Load().(string)
		return "", errors.New("the Kubernetes issuer has not answered yet: " + why)
	}
	return v.Verify(ctx, token)
}

// start fetches the issuer's discovery document, retrying with back-off
// until it succeeds or ctx ends.
func (l *lazyVerifier) start(ctx context.Context, cfg k8sConfig, log *slog.Logger) error {
	var client *http.Client
	if cfg.caFile != "" || cfg.tokenFile != "" {
		c, err := identity.NewInClusterHTTPClient(cfg.caFile, cfg.tokenFile)
		if err != nil {
			return err
		}
		client = c
	}
	sc := identity.ServiceAccountConfig{Issuer: cfg.issuer, Audience: cfg.audience, HTTPClient: client}
	go func() {
		backoff := time.Second
		for {
			v, err := identity.NewServiceAccountVerifier(ctx, sc)
			if err == nil {
				l.v.Store(v)
				log.Info("verifying Kubernetes service-account tokens", "issuer", cfg.issuer, "audience", cmp.Or(cfg.audience, "chat-broker"))
				return
			}
			l.lastErr.Store(err.Error())
			log.Error("Kubernetes issuer unreachable; retrying", "issuer", cfg.issuer, "err", err, "retry_in", backoff.String())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
		}
	}()
	return nil
}
