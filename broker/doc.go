// Package broker mints short-lived OAuth access tokens for the Chat app,
// one per (subject, scope set), and caches each until shortly before it
// expires: with the app's service-account key, or keyless
// (Config.Impersonate), through the IAM Credentials API under the
// broker's own Google identity. It is the token step of a call's path
// through chat-broker, told with the rest of the path in
// docs/architecture.md; docs/keyless.md tells keyless mode.
//
// # What it promises
//
//   - Only "type": "service_account" keys load (LoadKey, ParseKey); any
//     other kind, and every malformed key, is an error that says what is
//     wrong and how to fix it. Tokens are minted at the key's token_uri
//     with Google's two-legged JWT-bearer flow (golang.org/x/oauth2/jwt),
//     so the emulator works by writing its own URL there. Keyless, app
//     tokens come from generateAccessToken and delegated ones from
//     signJwt and the same exchange; only the mint differs (a minter),
//     and every promise below holds for both.
//   - Never an expired token: Token hands out a cached token only while it
//     has its margin left, Config.MinRemaining but at most a quarter of
//     the granted lifetime (so any lifetime of a minute or more works);
//     otherwise it mints, and if that fails returns the error (RetryAfter
//     says whether and when to retry). Expiry is reckoned from when the
//     mint started.
//   - Refresh ahead: a cached token is renewed in the background from
//     Config.RefreshAfter of its lifetime, used or not, and a failed
//     refresh is tried again on a per-token back-off (refresh.go), so an
//     outage of the token endpoint that ends while the cached token is
//     still served costs callers nothing. Health and Stats report it.
//   - Nothing secret shows: a Token's value is reachable only through
//     SetAuthHeader, and Key, Token and MintError print nothing secret
//     through fmt, slog or Error. client_email, the key id, Fingerprint,
//     scopes, subject, HTTP status and Google's error codes may appear;
//     keyless, so do the accounts' emails and the fix.
//
// # Concurrency
//
// A Broker is safe for concurrent use, and a cache hit takes no lock.
// Concurrent Token calls for one (subject, scope set) share one mint, as
// do a background refresh and the callers that arrive while it runs. A
// mint runs on the broker's own context, bounded by Config.MintTimeout,
// so a caller that gives up does not fail the others. Close stops the
// background refresher, cancels mints in flight and waits for them: no
// goroutine of the broker outlives it. Every time it reads is Config.Now
// and every wait Config.After, so tests drive expiry, refresh and
// back-off without sleeping.
//
// # What it does not do
//
// It does not decide which caller may have which scopes or subject (the
// policy package does, and the proxy asks for exactly what a call needs),
// retry a failed synchronous mint (the proxy answers 503 with
// Retry-After), or refresh a token the cache has evicted
// (Config.CacheSize bounds that work).
package broker
