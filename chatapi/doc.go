// Package chatapi is what chat-broker knows about the Google Chat v1 REST
// API, in one place that routing, policy validation and the emulator share.
//
// The catalog (Methods, Lookup) lists every method: its id as policy files
// name it ("spaces.messages.create"), HTTP verb, path templates, the scopes
// Chat accepts for app authentication, user authentication (domain-wide
// delegation) and admin access, each narrowest first, its quota class,
// and its idempotency parameter. The facts and their sources are in
// shared/chat-api.md.
//
// Router matches a normalized request to a catalog method with
// gorilla/mux, because Chat puts custom verbs after a colon inside a path
// segment ("/v1/spaces/{space}:completeImport"), which net/http's
// ServeMux cannot express.
//
// Error is Google's error body. The broker answers its own refusals in
// the same shape (ErrorInfo domain "chat-broker") so that every Google
// client library reports them as it reports Chat's.
//
// What it does not do: it makes no network calls, holds no state and
// imports no other package of chat-broker. Everything it exports is
// immutable after init and safe for concurrent use.
package chatapi
