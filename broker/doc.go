// Package broker holds the Chat app's service-account key and mints
// short-lived OAuth access tokens with it, one per (subject, scope set),
// caching each until shortly before it expires.
//
// # What it does
//
//   - Loads a service-account JSON key (LoadKey, ParseKey). Only
//     "type": "service_account" keys are accepted; every other kind, and
//     every malformed key, is an error that says what is wrong and how to
//     fix it. The key's token_uri decides where tokens are minted, so the
//     emulator works by writing its own URL there.
//   - Mints tokens with Google's two-legged JWT-bearer flow
//     (golang.org/x/oauth2/jwt): an RS256 assertion signed with the key,
//     carrying the requested scopes and, for domain-wide delegation, a
//     subject.
//   - Caches tokens in a size-bounded LRU (golang-lru/v2 lru.Cache) keyed
//     on the subject and the sorted, de-duplicated scope set, so scope
//     order does not matter.
//
// # What it does not do
//
// It does not decide which caller may have which scopes or subject: the
// policy package does, and the proxy asks for exactly the scopes a call
// needs. It never hands a key or a token to anyone: a Token's value is
// reachable only through SetAuthHeader, and Key, Token and MintError print
// nothing secret through fmt, slog or Error. The private key, the signed
// assertion and access tokens never appear in a log line, an error or a
// metric; client_email, the key id, Fingerprint, scopes, subject, HTTP
// status and Google's error codes may. It does not retry a failed
// synchronous mint itself: the caller (the proxy) answers 503.
//
// # Refresh ahead
//
// Each token gets a refresh point at Config.RefreshAfter (default 0.5) of
// its lifetime, jittered by ±10% per token so tokens minted together are
// not refreshed together. A Token call at or after that point, while the
// token still has at least Config.MinRemaining left, returns the cached
// token at once and starts one background refresh for it. If the refresh
// fails, the old token is served while it is still good and the refresh
// is tried again on a later call, at most once every few seconds per
// token. So a token-endpoint outage shorter than about half a token's
// lifetime is invisible to callers.
//
// # Never an expired token
//
// A token with less than Config.MinRemaining (default one minute) left,
// or already expired, is never returned. Token mints synchronously
// instead, and if that mint fails it returns the error. Expiry is
// reckoned on Config.Now, from the moment the mint started plus the
// endpoint's expires_in, so network time only makes the broker more
// cautious. A freshly minted token whose whole lifetime is shorter than
// MinRemaining is an error, too.
//
// # Concurrency
//
// A Broker is safe for concurrent use. Concurrent Token calls for the same
// (subject, scope set) share one mint (golang.org/x/sync/singleflight), as
// do a background refresh and callers that arrive while it runs. A mint
// runs on the broker's own context, bounded by Config.MintTimeout: a
// caller whose context ends stops waiting and gets its context's error,
// while the mint carries on for everyone else. Close cancels mints in
// flight and waits for them, so no goroutine of the broker outlives it.
package broker
