// Package emulator is an in-memory fake of the two Google services a Chat
// app talks to: the OAuth 2.0 token endpoint and the Google Chat REST API
// (chat.googleapis.com). chat-broker's tests, its demo command and users'
// own CI run against it, so nothing needs a real Google project.
//
// # What it emulates
//
// The token endpoint (POST /token) takes the JWT-bearer grant that
// golang.org/x/oauth2/jwt, Python's google-auth and the other Google
// libraries send for a service-account key. It verifies the assertion with
// its own code, as Google does: RS256 signature against the emulator's
// generated key, kid, iss, aud (any token URL passed to ServiceAccountJSON,
// or https://oauth2.googleapis.com/token), iat and exp (at most one hour
// apart, not expired, not far in the future), scope (Chat scope URLs) and
// sub (domain-wide delegation, for every user or per user). Refusals carry Google's exact
// error and error_description. Issued tokens expire after
// Config.TokenLifetime.
//
// The Chat API is served under /v1/ (and the upload paths /upload/v1/ and
// /resumable/upload/v1/), routed by the chatapi catalog. Every call is
// authenticated and authorized as Chat does it (see below): a missing,
// unknown or expired token is 401; a token without one of the method's
// scopes is 403 "insufficient scopes"; an app token on a user-only method,
// an app scope (chat.app.*) an administrator has not approved, and
// chat.bot in a space the app is not a member of each get Chat's own 403
// message. Errors have Google's JSON shape and WWW-Authenticate headers.
//
// These methods have real in-memory state:
//
//   - spaces.get, spaces.list, spaces.create (requestId idempotency) and
//     spaces.setup (user authentication only: a space, group chat or
//     direct message with the calling user and the invited humans as
//     members; requestId in the body; an existing direct message is
//     returned as it is);
//   - spaces.members.get and .list (the app as spaces/ID/members/app and
//     two seeded human members per configured space), .create, .patch
//     (updateMask=role) and .delete (answers the deleted Membership). With
//     app authentication (chat.app.memberships, approved) only human users
//     can be added; an app, a group or removing the app is 400. With user
//     authentication chat.memberships adds and removes humans and the
//     calling app (member users/app, which makes the app a member of the
//     space or no longer one), chat.memberships.app only the app and
//     chat.import only humans; another scope for the member is 403
//     "insufficient scopes";
//   - spaces.messages.create (requestId and client-assigned messageId
//     idempotency, threads), .get, .list (paging, filters, orderBy),
//     .patch, .update (updateMask, allowMissing) and .delete;
//   - spaces.messages.reactions.create, .list (paging, filters on
//     emoji.unicode, emoji.custom_emoji.uid and user.name) and .delete, for
//     user authentication only, as at Chat. A user reacting twice with one
//     emoji gets 409, and only the user who reacted may delete a reaction.
//     Messages carry emojiReactionSummaries;
//   - spaces.spaceEvents.list and .get. Creating, updating and deleting
//     messages, memberships and reactions through the API records events
//     (google.workspace.chat.message.v1.created and so on) with the
//     resource as it was in messageCreatedEventData and the like. list
//     requires a filter naming event types (event_types:"…" joined by OR,
//     optionally ANDed with start_time="…" and end_time="…"), as Chat
//     does. Any of the catalog's scopes for the method is enough for every
//     event type; Chat asks for the scope that covers the event types
//     requested.
//
// Every request is logged (Requests), every issued token recorded (Mints,
// WaitForMints), running totals are kept (Counters), and faults can be
// injected (InjectFault, SetTokenError) to test retries.
//
// # Fault injection
//
// InjectFault adds a Fault that acts on Chat API calls after their
// authentication, scope and space checks. A fault can:
//
//   - answer a Status, 429 or a 5xx, with Google's error body and change
//     nothing. A 429 is chat-api.md §C.3's RESOURCE_EXHAUSTED with an
//     ErrorInfo RATE_LIMIT_EXCEEDED (metadata consumer, service,
//     quota_metric, quota_limit), a Help link, a RetryInfo detail and a
//     Retry-After header (Fault.RetryAfter, 1 s when unset); a 5xx
//     carries Retry-After and RetryInfo only when RetryAfter is set;
//   - with Reset, read the request and drop the connection without an
//     answer (a TCP reset: the client sees ECONNRESET or EOF). The call
//     takes no effect, or with ResetAfterEffect it takes effect first and
//     only the answer is lost, as when a connection breaks on the way
//     back. The request is logged with status 0;
//   - with Latency, wait (in real time) before doing any of that; a
//     fault with only Latency slows calls down without failing them. A
//     client that gives up during the wait ends the request: it takes no
//     effect and is logged with status 499.
//
// Method and Spaces narrow a fault to one method and to calls addressing
// some spaces (per-space 429s); Times ends it after that many uses, and
// Fraction makes it apply to each matching call with that probability
// only. Config.Seed (or SetSeed) seeds the random source, so a test that
// sends the same calls in the same order meets the same faults; Seed
// reports the seed in use when it was picked at random.
//
// Faults are checked in the order they were added: every latency-only
// fault that applies adds its latency, and the first failing fault
// (Status or Reset) that applies answers the call, after its own
// Latency; later failing faults are not consulted.
//
// Writes that carry a requestId (spaces.messages.create, spaces.create,
// spaces.setup) are deduplicated per caller, atomically: a repeat, or a
// concurrent duplicate, returns the resource the first attempt created,
// even when that attempt's connection was reset after it took effect.
// That is what makes a client's retry of a write safe.
//
// SetTokenError makes every token request fail with a given status and
// OAuth error, such as 400 invalid_grant "Invalid JWT Signature." for a
// revoked key or 503 temporarily_unavailable for an outage, until it is
// cleared with status 0. SetTokenEndpointDown, the older switch for a 503,
// takes precedence while set.
//
// # Authentication and authorization
//
// Every call is checked against the chatapi catalog:
//
//   - an app token (no sub) must carry one of the method's AppScopes; a
//     user-only method answers 403 "This method doesn't support app
//     authentication…", and a chat.app.* scope counts only once approved
//     (Config.Approved, Approve), else 403 "The administrator must grant
//     the app…";
//   - a delegated token (with sub) must carry one of the method's
//     UserScopes, or AdminScopes with useAdminAccess=true; carrying
//     chat.bot at all answers 403 "The API is called without service
//     account credentials…", as Chat does;
//   - anything else is 403 "Request had insufficient authentication
//     scopes." with the accepted scopes in WWW-Authenticate.
//
// The token endpoint decides who may be a sub: every user with
// Config.Delegation, only the users in Config.DelegatedUsers (emails,
// compared case-insensitively) when it is set, and SetDelegation and
// SetUserDelegation change it at run time. Any other sub gets Google's
// 401 unauthorized_client "Client is unauthorized to retrieve access
// tokens using this method, or client not authorized for any of the
// scopes requested."
//
// Membership: the app acting through chat.bot must be a member of the
// space (403 "You are not permitted to use this app" otherwise), while an
// approved chat.app.* scope acts across the organization. A delegated
// user is treated as a member of every space that exists: user-auth calls
// are allowed in any space, whoever members.list shows. members.list
// shows only the seeded humans, members added through the API and the
// users who set up or created a space.
//
// # Control API
//
// The handler also serves a small JSON API under /emulator/ so that the
// `chat-broker emulator` command, which runs the emulator as its own
// process, can be set up from a shell or another language's tests. It
// has no authentication: serve the emulator on loopback only. Errors have
// Google's JSON shape; unknown fields in a body are refused. Control
// requests are not in the Chat request log.
//
//	E=http://127.0.0.1:8081
//	# approve or unapprove a chat.app.* scope; GET lists the approved ones
//	curl -s -XPOST $E/emulator/approvals -d '{"scope":"chat.app.spaces.create","approved":true}'
//	curl -s $E/emulator/approvals          # {"approved":["chat.app.spaces.create"]}
//	# delegation for one user, or for every user ({"enabled":false}: nobody)
//	curl -s -XPOST $E/emulator/delegation -d '{"user":"alice@example.com","enabled":true}'
//	curl -s -XPOST $E/emulator/delegation -d '{"enabled":true}'
//	curl -s $E/emulator/delegation         # {"allUsers":true,"users":[]}
//	# add a space, or set whether the app is a member of it; GET lists them
//	curl -s -XPOST $E/emulator/spaces -d '{"name":"spaces/BBBB","appIsMember":true}'
//	# fail the next 3 creates with 503; method "" or absent: every method
//	curl -s -XPOST $E/emulator/faults -d '{"method":"spaces.messages.create","status":503,"retryAfterSeconds":0,"times":3}'
//	# 429 (Retry-After: 5) for a fifth of the calls in one space, until cleared
//	curl -s -XPOST $E/emulator/faults -d '{"status":429,"retryAfterSeconds":5,"fraction":0.2,"spaces":["spaces/AAAA"]}'
//	# drop the connection of the next create, before it takes effect ...
//	curl -s -XPOST $E/emulator/faults -d '{"method":"spaces.messages.create","reset":true,"times":1}'
//	# ... or after: the message is created, the answer is lost
//	curl -s -XPOST $E/emulator/faults -d '{"method":"spaces.messages.create","reset":true,"resetAfterEffect":true,"times":1}'
//	# slow every call down by 1.5 s without failing it
//	curl -s -XPOST $E/emulator/faults -d '{"latencyMs":1500}'
//	curl -s -XDELETE $E/emulator/faults    # clear every fault; GET lists them
//	# the seed of the fractions' random source (0: pick one at random)
//	curl -s -XPOST $E/emulator/seed -d '{"seed":42}'
//	curl -s $E/emulator/seed               # {"seed":42}
//	# the token endpoint down or up, and the lifetime of new tokens (0: 1h)
//	curl -s -XPOST $E/emulator/token-endpoint -d '{"down":true}'
//	curl -s -XPOST $E/emulator/token-lifetime -d '{"seconds":600}'
//	# every token request fails with this OAuth error; {"status":0} clears
//	curl -s -XPOST $E/emulator/token-error -d '{"status":400,"error":"invalid_grant","description":"Invalid JWT Signature."}'
//	curl -s -XPOST $E/emulator/token-error -d '{"status":0}'
//	# the request log (DELETE empties it) and the issued tokens
//	curl -s $E/emulator/requests
//	curl -s $E/emulator/mints
//	# running totals (DELETE zeroes them)
//	curl -s $E/emulator/counters
//	# {"requests":3,"byMethod":{"spaces.messages.create":3},"byStatus":{"0":1,"200":2},
//	#  "injectedFaults":1,"resets":1,"delayed":0,"tokenRequests":1,"mints":1,"tokenErrors":0}
//
// The fields of POST /emulator/faults are those of Fault: method,
// status, retryAfterSeconds, times, fraction, reset, resetAfterEffect,
// latencyMs and spaces; GET also shows left, how many more times a fault
// with times applies. POST /emulator/token-error takes status (required;
// 0 clears), error and description, as SetTokenError.
//
// A logged request has time, methodId, verb, path, query, scopes, subject
// and status. It never has the Authorization header, and the values of
// access_token, oauth_token and key in the query read REDACTED.
//
// # What it does not emulate
//
// Every other catalog method passes the authentication and scope checks
// and then answers 501 UNIMPLEMENTED, never a fake success. Cards and
// attachments are stored and echoed back but not validated; media upload
// and download, custom emoji, read state, sections, availability,
// messages.search, spaces.search, spaces.patch and .delete, Google Group
// members and import mode are not implemented, and admin
// (useAdminAccess=true) calls are served like the user's own calls once
// the admin scope is checked. Space events are not recorded for
// spaces.create and spaces.setup, and batch event types are accepted in a
// filter but never produced. The finer rules of membership are not
// enforced: anyone may remove a manager, app authentication may change
// memberships in spaces the app did not create, and chat.import works
// outside import mode. There is no HTTPS listener of its own (use
// httptest.NewTLSServer), no batch endpoint, no gRPC, no self-signed JWTs
// as bearer tokens, and no quota accounting other than injected 429s.
// Faults act on the Chat API only; the token endpoint fails only as a
// whole (SetTokenError, SetTokenEndpointDown).
//
// # Concurrency
//
// An Emulator is safe for concurrent use by any number of goroutines:
// ServeHTTP and every exported method may be called at once. A request is
// in the request log before its response is written.
//
// # Use from Go tests
//
// Serve the emulator with httptest.NewServer, hand the key file from
// ServiceAccountJSON(srv.URL+"/token") to the code under test, and point
// its Chat client at srv.URL+"/" (see the package example). For the
// official Go client that is
//
//	chat.NewService(ctx, option.WithEndpoint(srv.URL+"/"), option.WithTokenSource(ts))
//
// where ts comes from google.JWTConfigFromJSON(key, scopes...); set the
// JWT config's Subject for user authentication. Use Config.Now for a
// clock the test controls, Approve, AddSpace and SetUserDelegation to set
// up the organization, and Requests, Mints and Messages to assert on what
// happened.
package emulator
