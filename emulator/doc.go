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
// WaitForMints), and faults can be injected (InjectFault) to test retries.
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
//	curl -s -XDELETE $E/emulator/faults    # clear every fault; GET lists them
//	# the token endpoint down or up, and the lifetime of new tokens (0: 1h)
//	curl -s -XPOST $E/emulator/token-endpoint -d '{"down":true}'
//	curl -s -XPOST $E/emulator/token-lifetime -d '{"seconds":600}'
//	# the request log (DELETE empties it) and the issued tokens
//	curl -s $E/emulator/requests
//	curl -s $E/emulator/mints
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
