// Package proxy is chat-broker's request path: an http.Handler that turns
// a call from an app in the pod into a call to the Google Chat API made
// with the app's own Google identity, or refuses it.
//
// Proxy.ServeHTTP runs the steps in order: check the request's shape
// (internal/inbound), identify the caller (internal/identity, or the
// secret the policy holds the hash of), route it to a catalog method,
// decide with the policy (default deny; a search once its body is read;
// internal/filters reads what a call asks to see),
// cap and buffer the body, pace it
// (internal/shaping), get a token for the one scope decided on, forward
// it through net/http's Transport (HTTP/2 to Chat), retry when a second
// attempt cannot do the work twice (internal/retry), explain Chat's two
// classic 403s, and write one audit record. docs/architecture.md tells
// each step, the retry and shaping rules and how upstream connections
// are kept; this package is where they are wired together.
//
// What it promises:
//
//   - a call the policy does not allow never reaches the upstream, and
//     the path and query forwarded are the ones the policy decided on;
//   - the caller's credential never leaves, and no Google token reaches
//     a caller;
//   - one caller never receives another's answer (HTTP/2 streams to
//     Chat, a connection pool per caller over HTTP/1.1) and never reaches
//     another's writes through a shared requestId or a resumable upload
//     session (a session belongs to the caller that started it:
//     internal/uploads);
//   - what a call may see is read where Chat reads it: a search's spaces
//     from its body's filter (gunzipped under a cap), space-event scopes
//     from its filter; what cannot be read for certain is refused;
//   - every refusal is a Google-shaped error (internal/refusal) whose
//     ErrorInfo reason and message say what to change;
//   - every call, refused or forwarded, leaves one audit record without
//     bodies or credentials.
//
// Explain runs the routing and the decision for a request without
// sending it; it is `chat-broker policy explain`. Every wait goes through
// Config.Now and Config.After, so tests drive back-off, holds and limits
// with a fake clock.
//
// A Proxy is safe for concurrent use.
package proxy
