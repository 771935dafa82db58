package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/fsnotify/fsnotify"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/policy"
)

// reloader swaps in a new policy or key when its file changes or on
// SIGHUP: parse and validate first, swap only a good one, and keep the
// last good one otherwise. It watches the files' folders, not the files:
// Kubernetes updates a mounted ConfigMap or Secret by re-pointing a
// symlink (..data), which a watch on the old file never sees.
type reloader struct {
	keyFile, policyFile string
	store               *policy.Store
	broker              *broker.Broker
	log                 *slog.Logger

	keySum, policySum [sha256.Size]byte // of the contents in force
	keyBad, policyBad [sha256.Size]byte // of contents rejected last: not retried until they change

	reloads, errors atomic.Int64
	// done, if set, is called after each reload attempt (tests wait on it).
	done func(what string, err error)
	// onKey, if set, is called with each key swapped in.
	onKey func(*broker.Key)
}

func newReloader(keyFile, policyFile string, store *policy.Store, b *broker.Broker, log *slog.Logger) *reloader {
	r := &reloader{keyFile: keyFile, policyFile: policyFile, store: store, broker: b, log: log}
	r.keySum = fileSum(keyFile)
	r.policySum = fileSum(policyFile)
	return r
}

func fileSum(name string) [sha256.Size]byte {
	data, err := os.ReadFile(name)
	if err != nil {
		return [sha256.Size]byte{}
	}
	return sha256.Sum256(data)
}

// start watches the files' folders, then handles events and SIGHUP (hup)
// in the background until ctx ends. The watches are in place when it
// returns, so a change made after the broker says it is serving is seen.
func (r *reloader) start(ctx context.Context, hup <-chan os.Signal) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		r.log.Warn("cannot watch the key and policy files; reload with SIGHUP", "err", err)
	} else {
		dirs := map[string]bool{filepath.Dir(r.policyFile): true}
		if r.keyFile != "" { // keyless: no key to watch
			dirs[filepath.Dir(r.keyFile)] = true
		}
		for d := range dirs {
			if err := w.Add(d); err != nil {
				r.log.Warn("cannot watch a folder; reload with SIGHUP", "dir", d, "err", err)
			}
		}
		events, errs = w.Events, w.Errors
	}
	go func() {
		if w != nil {
			defer w.Close()
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.log.Info("SIGHUP: reloading the key and the policy")
				r.reload(true)
			case <-events:
				r.reload(false)
			case err := <-errs:
				r.log.Warn("file watch error", "err", err)
			}
		}
	}()
}

// reload re-reads both files and swaps in what changed and validates.
// force reloads even unchanged contents (SIGHUP).
func (r *reloader) reload(force bool) {
	if sum := fileSum(r.policyFile); force || (sum != r.policySum && sum != r.policyBad && sum != [sha256.Size]byte{}) {
		p, err := policy.Load(r.policyFile)
		r.finish("policy", err)
		r.policyBad = [sha256.Size]byte{}
		if err != nil {
			r.policyBad = sum
		} else {
			r.store.Swap(p)
			r.policySum = sum
			r.log.Info("policy reloaded", "file", r.policyFile, "callers", len(p.Callers()))
		}
	}
	if r.keyFile == "" {
		return // keyless: no key to reload
	}
	if sum := fileSum(r.keyFile); force || (sum != r.keySum && sum != r.keyBad && sum != [sha256.Size]byte{}) {
		k, err := broker.LoadKey(r.keyFile)
		if err == nil {
			err = r.broker.SetKey(k)
		}
		r.finish("key", err)
		r.keyBad = [sha256.Size]byte{}
		if err != nil {
			r.keyBad = sum
		} else {
			r.keySum = sum
			if r.onKey != nil {
				r.onKey(k)
			}
			r.log.Info("key reloaded", "file", r.keyFile, "key", k.ClientEmail, "key_fingerprint", k.Fingerprint())
		}
	}
}

func (r *reloader) finish(what string, err error) {
	if err != nil {
		r.errors.Add(1)
		r.log.Error(what+": reload rejected, keeping the previous one", "err", err)
	} else {
		r.reloads.Add(1)
	}
	if r.done != nil {
		r.done(what, err)
	}
}
