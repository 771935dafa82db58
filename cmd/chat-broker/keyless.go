package main

import (
	"net/url"
	"strings"

	flag "github.com/spf13/pflag"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/chatapi"
)

// keylessFlags are serve's keyless mode: --impersonate, with no --key,
// mints through the broker's own Google identity (Application Default
// Credentials) and the IAM Credentials API.
type keylessFlags struct {
	impersonate, iamEndpoint, tokenEndpoint string
}

func (k *keylessFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.impersonate, "impersonate", "", "keyless mode: the Chat app's service-account `email`; the broker's own Google identity (application default credentials: GKE Workload Identity, workload identity federation, gcloud) mints its tokens through the IAM Credentials API; instead of --key")
	fs.StringVar(&k.iamEndpoint, "iam-endpoint", "", "with --impersonate: the IAM Service Account Credentials API's root `URL` (default "+broker.DefaultIAMEndpoint+"); http only on a loopback host (an emulator)")
	fs.StringVar(&k.tokenEndpoint, "token-endpoint", "", "with --impersonate: the token endpoint `URL` delegation assertions are exchanged at (default "+broker.DefaultTokenEndpoint+"); http only on a loopback host")
}

// check validates the keyless flags against --key.
func (k *keylessFlags) check(keyFile string) error {
	if k.impersonate == "" {
		for _, f := range []struct{ name, v string }{{"--iam-endpoint", k.iamEndpoint}, {"--token-endpoint", k.tokenEndpoint}} {
			if f.v != "" {
				return usageError("%s: only with --impersonate (with --key, the key file's token_uri says where tokens are minted)", f.name)
			}
		}
		return nil
	}
	if keyFile != "" {
		return usageError("--key and --impersonate: give one, not both: --key FILE mints with the service-account key; --impersonate EMAIL mints keyless through the pod's own Google identity (drop --key and the key Secret)")
	}
	if !strings.Contains(k.impersonate, "@") || strings.ContainsAny(k.impersonate, "/ \t") {
		return usageError("--impersonate %q: want the Chat app's service-account email, like chat-app@PROJECT.iam.gserviceaccount.com", k.impersonate)
	}
	for _, f := range []struct{ name, v string }{{"--iam-endpoint", k.iamEndpoint}, {"--token-endpoint", k.tokenEndpoint}} {
		if f.v == "" {
			continue
		}
		u, err := url.Parse(f.v)
		if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return usageError("%s %q: want an absolute https URL", f.name, f.v)
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return usageError("%s %q: plain http is allowed only on a loopback host (an emulator); use https", f.name, f.v)
		}
	}
	return nil
}

// impersonation is the broker's keyless configuration; nil without
// --impersonate.
func (k *keylessFlags) impersonation() *broker.Impersonation {
	if k.impersonate == "" {
		return nil
	}
	return &broker.Impersonation{ServiceAccount: k.impersonate, IAMEndpoint: k.iamEndpoint, TokenEndpoint: k.tokenEndpoint}
}

// identityAttrs say, in the serving log line, whose tokens the broker
// mints and how: the key's account and fingerprint, or keyless.
func (in *instance) identityAttrs() []any {
	if in.keyless != nil {
		iam, tok := in.keyless.IAMEndpoint, in.keyless.TokenEndpoint
		if iam == "" {
			iam = broker.DefaultIAMEndpoint
		}
		if tok == "" {
			tok = broker.DefaultTokenEndpoint
		}
		return []any{"impersonate", in.keyless.ServiceAccount, "iam_endpoint", iam, "token_endpoint", tok}
	}
	return []any{"key", in.key.ClientEmail, "key_fingerprint", in.key.Fingerprint()}
}

// keylessSelfTest adapts the startup self-test to keyless mode: with a
// policy that grants no app scope (delegation only), a key's self-test
// mints nothing, but keyless /readyz must still wait for a first mint, so
// it mints a chat.bot token through generateAccessToken (IAM grants it
// whatever Chat knows of the app) and drops it afterwards (drop), so that
// nothing refreshes a token no caller uses.
func (in *instance) keylessSelfTest(scopes []chatapi.Scope) (_ []chatapi.Scope, drop bool) {
	if scopes != nil || in.keyless == nil {
		return scopes, false
	}
	return []chatapi.Scope{chatapi.ScopeBot}, true
}
