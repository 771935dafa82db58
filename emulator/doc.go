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
// sub (domain-wide delegation, on or off). Refusals carry Google's exact
// error and error_description. Issued tokens expire after
// Config.TokenLifetime.
//
// The Chat API is served under /v1/ (and the upload paths /upload/v1/ and
// /resumable/upload/v1/), routed by the chatapi catalog. Every call is
// authenticated and authorized as Chat does it: a missing, unknown or
// expired token is 401; a token without one of the method's scopes is 403
// "insufficient scopes"; an app token on a user-only method, an app
// scope (chat.app.*) an administrator has not approved, and chat.bot in a
// space the app is not a member of each get Chat's own 403 message. Errors
// have Google's JSON shape and WWW-Authenticate headers.
//
// These methods have real in-memory state: spaces.get, spaces.list,
// spaces.create (with requestId), spaces.members.get and .list (the app as
// spaces/ID/members/app and two seeded human members per space), and
// spaces.messages.create (requestId and client-assigned messageId
// idempotency, threads), .get, .list (paging, simple filters,
// orderBy), .patch, .update (updateMask, allowMissing) and .delete.
// Every request is logged (Requests), every issued token recorded (Mints,
// WaitForMints), and faults can be injected (InjectFault) to test retries.
//
// # What it does not emulate
//
// Every other catalog method passes the authentication and scope checks
// and then answers 501 UNIMPLEMENTED, never a fake success. Cards and
// attachments are stored and echoed back but not validated; media upload
// and download, reactions, space events, read state and the admin
// (useAdminAccess) views are not implemented. User authentication
// (domain-wide delegation) is supported only as far as the scope checks
// and messages; a delegated user sees every space. There is no HTTPS
// listener of its own (use httptest.NewTLSServer), no batch endpoint, no
// gRPC, no self-signed JWTs as bearer tokens, and no quota accounting
// other than injected 429s.
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
// where ts comes from google.JWTConfigFromJSON(key, scopes...). Use
// Config.Now for a clock the test controls, Approve and AddSpace to set up
// the organization, and Requests, Mints and Messages to assert on what
// happened.
package emulator
