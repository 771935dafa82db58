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
//     order does not matter. A cache hit takes no lock: entries are
//     mirrored in a sync.Map for look-ups, and a hit tells the LRU that
//     its token is in use at most once a second, so concurrent calls do
//     not queue on the LRU's mutex (about 0.1 µs a hit, 2 allocations).
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
// synchronous mint itself: the caller (the proxy) answers 503, with
// Retry-After when RetryAfter says a retry may help.
//
// # Refresh ahead
//
// Each token gets a refresh point at Config.RefreshAfter (default 0.5) of
// its lifetime as the endpoint granted it (expires_in), jittered by ±10%
// per token so tokens minted together, or by a fleet of brokers, are not
// refreshed together. From that point on the token is refreshed in the
// background while the cached one is still served: by one background
// goroutine, the refresher, which sleeps until the earliest refresh that
// is due and so renews a quiet caller's token without any call, and by
// the first Token call that sees the refresh due. Either way one
// refresh runs per token. A cached token is kept fresh, used or not,
// until the cache evicts it (Config.CacheSize bounds that work); evicted
// tokens are not refreshed.
//
// # Back-off
//
// A failed background refresh is tried again after a back-off kept per
// token, and reset when the token is replaced:
//
//   - transient errors (no answer, a timeout or reset connection, 408,
//     429, 5xx, temporarily_unavailable; see MintError.Temporary): after
//     the n-th failure in a row the next try comes after a delay drawn
//     uniformly from [c/2, c], c = min(1s·2ⁿ⁻¹, 1 min) ("equal jitter"),
//     so 0.5–1 s, 1–2 s, 2–4 s, …, then every 30–60 s;
//   - permanent errors (invalid_grant, invalid_scope, unauthorized_client,
//     disabled_client, other 4xx): every 5 minutes. No retry fixes them,
//     so the endpoint is not hammered, but a fix (a restored grant, a
//     re-enabled account) is picked up without a restart.
//
// Either delay is cut to the time left before the token stops being
// handed out, so the last try comes while it is still served. Past that
// point the refresher keeps trying on the same back-off, so once the
// endpoint is back the next caller finds a fresh token. So a
// token-endpoint outage that ends before the cached token's last
// Config.MinRemaining costs callers nothing: with one-hour tokens, an
// outage of up to about half an hour, at one try per token every 30 to
// 60 seconds, not one per call.
//
// Failures are logged: transient ones at warn, with the back-off;
// permanent ones at error once per token and error, repeats at debug; a
// success after failures at info. Health reports the last error, whether
// it is permanent, the failures in a row, whether the app's own tokens
// fail permanently (Failing, for /readyz), and each cached token's
// expiry, refresh point, next try and failures; Stats counts mints by
// outcome and by who asked; SecondsUntilExpiry is the least time a cached
// token has left.
//
// # Never an expired token
//
// A token with less than Config.MinRemaining (default one minute) left,
// or already expired, is never returned. Token mints synchronously
// instead, and if that mint fails it returns the error: RetryAfter says
// whether to retry and when (the token's current back-off, at least a
// second), so the proxy answers 503 with Retry-After. Expiry is reckoned
// on Config.Now, from the moment the mint started plus the endpoint's
// expires_in, so network time only makes the broker more cautious. A
// freshly minted token whose whole lifetime is shorter than MinRemaining
// is an error, too. Synchronous mints do not wait for the back-off: a
// caller that needs a token gets a fresh attempt.
//
// # Concurrency
//
// A Broker is safe for concurrent use. Concurrent Token calls for the same
// (subject, scope set) share one mint (golang.org/x/sync/singleflight), as
// do a background refresh and callers that arrive while it runs. A mint
// runs on the broker's own context, bounded by Config.MintTimeout: a
// caller whose context ends stops waiting and gets its context's error,
// while the mint carries on for everyone else. New starts the refresher;
// Close stops it, cancels mints in flight and waits for them, so no
// goroutine of the broker outlives it. Time is Config.Now and
// Config.After, so tests drive expiry, refresh and back-off without
// sleeping.
package broker
