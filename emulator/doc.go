// Package emulator is an in-memory fake of the Google services a Chat app
// talks to: the OAuth 2.0 token endpoint (POST /token) and the Google
// Chat REST API (under /v1/), and, for keyless callers, the IAM
// Credentials API (generateAccessToken, signJwt) and a metadata server
// handing out the pod's own identity (point GCE_METADATA_HOST at it). An
// Emulator is an http.Handler; serve it with httptest.NewServer, hand the
// code under test the key file from ServiceAccountJSON, and point its
// Chat client at the server (see the package example). chat-broker's
// tests, its demo and users' CI run against it, so no test needs a real
// Google project.
//
// What it promises a test that imports it:
//
//   - Google's answers, not look-alikes: the token endpoint verifies the
//     signed assertion (made with the key or by signJwt) and refuses with
//     Google's exact OAuth errors; IAM checks the caller's own token and
//     its token-creator grant (SetTokenCreator withdraws it); and
//     every Chat call is authenticated, checked for scopes, approval and
//     membership, and answered in Chat's JSON and error shapes.
//   - No fake successes: a Chat method it does not implement answers 501
//     after the same checks.
//   - Observable and repeatable: a request is in Requests and Counters
//     before its answer is written, Mints has every issued token,
//     Config.Now sets the clock and Config.Seed the random source of
//     faults.
//   - A stable API: exported names are not removed or changed.
//
// The handler also serves a control API under /emulator/ for the
// chat-broker emulator command, which runs the emulator as its own
// process; it has no authentication, so serve the emulator on loopback.
//
// An Emulator is safe for concurrent use: ServeHTTP and every exported
// method may be called from any number of goroutines at once.
//
// docs/emulator.md in the chat-broker repository is the reference: what
// is emulated and how, the control API, faults, quota errors, limits and
// what is not emulated.
package emulator
