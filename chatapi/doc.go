// Package chatapi is what chat-broker knows about the Google Chat v1 REST
// API, in one place that routing, policy validation and the emulator
// share. Where it fits in a call's path through the broker is told in
// docs/architecture.md.
//
// It promises:
//
//   - The catalog (Methods, Lookup) lists every Chat v1 method: its id as
//     policy files name it ("spaces.messages.create"), HTTP verb, path
//     templates, the scopes Chat accepts for app authentication, user
//     authentication (domain-wide delegation) and admin access, each
//     narrowest first, its quota class, and its idempotency parameter.
//     Methods, verbs, paths and scopes come from Google's discovery
//     document (package chatapi/discovery, generated from the pinned
//     google.golang.org/api); what the document does not say (RPC names,
//     quota classes, the order of preference) is a short overlay in
//     catalog.go, and the build fails loudly where the two disagree. The
//     table in docs/scopes.md is generated from it (go test ./chatapi
//     -update).
//   - SearchSpaces and SpaceEventNeeds read the parts of Chat's filter
//     strings that decide what a call may see (the spaces of a message
//     search, the event kinds of a space-events list), refusing what
//     they cannot read for certain.
//   - Router matches a request to its catalog method. It uses gorilla/mux
//     because Chat puts custom verbs after a colon inside a path segment
//     ("/v1/spaces/{space}:completeImport"), which net/http's ServeMux
//     cannot express.
//   - Error is Google's error body. The broker answers its own refusals in
//     the same shape (ErrorInfo domain "chat-broker"), so every Google
//     client library reports them as it reports Chat's.
//
// # Concurrency
//
// Everything it exports is immutable after init and safe for concurrent
// use.
//
// # What it does not do
//
// It makes no network calls, holds no state and imports no other package
// of chat-broker but its discovery document. It does not check that a request is canonical (the
// proxy refuses one that is not before routing it), decide who may call
// what (the policy package does), or know the numbers of Chat's quotas:
// only the class each method is charged to.
package chatapi
