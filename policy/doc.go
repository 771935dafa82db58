// Package policy reads chat-broker's policy file and answers, for each
// request, whether a caller may make it and with which token.
//
// # The file
//
// YAML, decoded strictly: an unknown or misspelled field, a duplicate
// key, a value of the wrong type or a second YAML document is an error,
// never ignored.
//
//	version: 1
//	callers:
//	  - name: notifier                 # [a-z0-9][a-z0-9._-]*, unique; in logs, metrics, errors
//	    identify:
//	      secretSHA256: "5e88…"        # from `chat-broker hash-secret`; unique across callers
//	    allow:
//	      - methods: [spaces.messages.create, spaces.messages.get]
//	        spaces: [spaces/AAAA, spaces/BBBB]
//	      - methods: [spaces.list]      # names no space, so it needs spaces: ["*"]
//	        spaces: ["*"]
//	    scopes: [chat.bot]             # the most this caller's tokens may carry
//	    subjects: []                   # users it may act as: emails or "*@example.com"
//	    limits: {perMinute: 600, burst: 20}
//
// methods holds catalog ids (chatapi.Methods; the discovery spelling
// "chat.spaces.messages.create" is accepted too), groups such as
// "spaces.messages.*" (every id that starts with "spaces.messages.",
// reactions and attachments included), or "*". spaces holds "spaces/ID"
// names, or "*" alone for every space. scopes take the short form
// ("chat.bot") or the full URL. A caller is identified by the SHA-256 of
// the secret it sends as its bearer token; the file never holds the
// secret. identify.unixUID and identify.serviceAccount are part of the
// format but refused by this version.
//
// Parse reports every problem at once, one per line, as
//
//	policy.yaml: callers[0].scopes[1]: unknown scope "chat.bott"; did you mean "chat.bot"?
//
// Besides the shape of the file it refuses rules that could never allow
// anything: a method id that no granted scope can serve (spaces.messages.list
// with only chat.bot needs chat.app.messages.readonly), a method that names
// no space in a rule with specific spaces, a group that matches no method.
//
// # Decisions
//
// Default deny: a call is allowed only when a rule allows it. Decide
// takes the caller, the catalog method, the space ("" when the method
// names none) and the subject ("" for app authentication), and checks in
// this order, stopping at the first refusal:
//
//  1. some rule of the caller lists the method (METHOD_NOT_ALLOWED);
//  2. one of those rules covers the space; a method that names no space
//     is covered only by spaces: ["*"] (SPACE_NOT_ALLOWED);
//  3. authentication: without a subject the method must accept app
//     authentication (USER_AUTH_REQUIRED); with one, the subject must be
//     in subjects (SUBJECT_NOT_ALLOWED) and the method must accept user
//     authentication (APP_AUTH_REQUIRED);
//  4. the caller is granted one of the scopes the method accepts for that
//     authentication (SCOPE_NOT_GRANTED).
//
// An allowed call gets the narrowest granted scope, in the catalog's
// order: chat.bot before chat.app.* for app authentication, and never
// chat.bot with a subject. Every deny carries a Reason, the Rule or field
// to change, and a Message that says what to change in which file.
//
// Decide costs the same with one caller or ten thousand: callers are
// found by map (CallerBySecret hashes the secret once and confirms in
// constant time), and each caller's rules are indexed by method id when
// the file is parsed.
//
// # What it does not do
//
// It does not read requests, route paths, enforce rate limits (Limits is
// data for the proxy), mint tokens, watch files or log. It does not offer
// admin access (useAdminAccess and the chat.admin.* scopes), and it does
// not know whether an administrator has approved a chat.app.* scope or
// whether the app is a member of a space: Google answers those.
//
// # Concurrency
//
// A *Policy and its *Caller values are immutable after Parse and safe for
// concurrent use. Store holds the current policy in an atomic pointer: a
// request calls Load once and uses that policy throughout, and a reload
// parses the new file first and swaps it in only when it is valid. A
// caller found in one policy is refused by another (UNKNOWN_CALLER), so
// identity and rules always come from the same file.
package policy
