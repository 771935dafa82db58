// Package proxy is chat-broker's request path: an http.Handler that turns
// a call from an app in the pod into a call to the Google Chat API made
// with the app's own Google identity, or refuses it.
//
// For each request, in order:
//
//  1. Normalize or refuse. Only origin-form targets with canonical paths
//     (no percent-encoding, dot or empty segments, "\" or ";"); no
//     method-override headers, caller-supplied Google credentials (query
//     access_token, oauth_token, key; X-Goog-Api-Key, cookies, a second
//     Authorization), forwarding headers, gRPC or protobuf bodies, repeated
//     query parameters, or system parameters that change the wire format,
//     identity or billing ($ct, callback, alt other than json, quotaUser,
//     userProject).
//  2. Identify the caller from facts it cannot forge: the kernel's peer
//     credentials on a Unix socket (ConnContext, policy unixUID/unixGID),
//     a Kubernetes projected service-account token verified against the
//     cluster issuer (ServiceAccountVerifier, whose issuerKeySet fetches
//     keys on first use and for an unknown key id at most every 5 s),
//     or the secret it sends as
//     its bearer token, whose SHA-256 the policy holds. Never an IP
//     address or a header. Unknown: 401; failed identifications are
//     logged without the credential and limited (then 429). The Host of
//     a TCP request must be the broker's own (Config.Hosts).
//  3. Route verb and path to a catalog method (chatapi.Router). Unknown:
//     404; known path with another verb: 405.
//  4. Decide with the policy (default deny), as the app or, when the
//     caller names a user in SubjectHeader, as that user through
//     domain-wide delegation. Denied: 403 whose ErrorInfo reason and
//     message say which rule to change. The decision fixes the one scope
//     the token carries: the narrowest the method accepts that the
//     caller is granted.
//  5. Cap the body at what the method carries and require JSON. A JSON
//     body (at most 1 MiB) is read whole, so that a retry can send it
//     again and an oversized one, even chunked, is answered 413 before
//     anything goes upstream; media.upload bodies (up to 200 MB) stream
//     and are never buffered. spaces.messages.create and spaces.create
//     get a requestId (a random UUID) when the caller sent none; one the
//     caller sent is scoped to it (below).
//  6. Shape (below): the caller's token bucket, any hold Chat's 429s put
//     on the space, the opt-in space and project buckets, and a slot
//     among the calls in flight. Over a limit: 429 RATE_LIMITED or
//     SPACE_RATE_LIMITED; over capacity: 503 OVERLOADED; both with
//     Retry-After and before anything goes upstream.
//  7. Get a token for the decided scope set from the TokenSource. None:
//     503, with Retry-After when a retry may help; Google refusing the
//     delegated subject: 403. An expired token is never sent.
//  8. Forward to the pinned upstream: the path the policy decided on,
//     the query as parsed, the caller's headers but for its credential,
//     hop-by-hop and broker headers, and the broker's token. Responses
//     (and media uploads) stream; one that breaks off upstream is cut
//     for the caller too, never ended as if complete. Retry when safe
//     (below); the caller gets the last attempt's response.
//  9. Explain Chat's two classic 403s (the app is not in the space; an
//     admin has not approved a chat.app.* scope) with a HintHeader, body
//     unchanged, and track each chat.app.* scope's approval (Approvals):
//     a 403 marks it not approved, the next success approved again. The
//     broker never refuses a call locally because of it.
//  10. Write one audit record: caller, method, space, subject, scopes,
//     decision, rule, status, hint, attempts, requestId, latency. Never
//     message text, bodies or credentials.
//
// Explain runs steps 1, 3 and 4 for a request without sending it; it is
// `chat-broker policy explain`.
//
// Every refusal is a Google-shaped error (chatapi.Error) with ErrorInfo
// domain "chat-broker", so client libraries report it as they report
// Chat's own errors.
//
// # Retries
//
// send makes every attempt of a call and hands the last one's response
// to forward, which streams it. A call is tried again only when a second
// attempt cannot do the work twice:
//
//   - 401 (a token revoked or expired early): the token is dropped, one
//     is minted, and the call is retried once, whatever the method (Chat
//     ran nothing);
//   - 429, 500, 502, 503, 504, a connection reset or an early EOF: for
//     reads (chatapi.Method.ReadOnly) and for writes Chat deduplicates,
//     spaces.messages.create and spaces.create, whose attempts all carry
//     the same requestId;
//   - a failed connect (nothing was sent): for every method.
//
// A response head that does not come within Config.ResponseHeaderTimeout
// (2 minutes) is like a reset: the attempt may have taken effect, so only
// a read or a deduplicated write goes again, and the caller gets 504
// UPSTREAM_TIMEOUT otherwise. An answer with no final HTTP status (a
// status outside 100-599, a 101) is 502 UPSTREAM_BAD_RESPONSE and is not
// retried. net/http's Transport itself sends a read again, within the
// attempt, when a kept-alive connection turns out closed before it
// answered, and any request whose bytes it never wrote.
//
// Other writes (patch, update, delete, members.create, spaces.setup, …)
// are not retried after a response or a reset: the first attempt may have
// taken effect. Neither is media.upload, whose body streams. A write the
// broker gave up on may still have taken effect (a reset after Chat
// stored it, then failures): a caller that retries on its own should send
// its own requestId, which the broker keeps, to stay deduplicated.
//
// Between attempts the broker waits: Chat's Retry-After when it sent one
// (plus up to Retries.Backoff of jitter), otherwise an exponential
// back-off from Retries.Backoff (100 ms) doubling to Retries.MaxBackoff
// (10 s), jittered between half and all of it. At most
// Retries.MaxAttempts (5) attempts, and none, the 401 one included, that
// would start after the call's Deadline (30 s from its arrival, never
// past the caller's own context).
//
// A retry budget keeps an outage from multiplying the load on Chat, as
// Finagle's RetryBudget does: every call forwarded deposits 0.2 retries
// (Retries.BudgetRatio), 10 retries a second are always allowed
// (Retries.BudgetFloor), and up to 10 s of that floor (100 retries) can
// be saved up; every retry, the 401 one included, spends one. So over any
// stretch of T seconds the broker sends at most calls × 1.2 + 100 + 10·T
// attempts; past the budget a call gets Chat's failure as it came.
//
// # Shaping
//
// Adaptive holds are always on: when Chat answers 429 for a space, the
// broker holds every call to that space (calls that name no space share
// one key, the project) for Chat's Retry-After, or without one for a
// jittered Shaping.HoldBackoff (1 s) that doubles while Chat keeps
// answering 429 (up to 32×). Calls that arrive during a hold wait in a
// queue when the hold ends within their deadline, and leave it in
// arrival order when it ends; the others are answered 429
// SPACE_RATE_LIMITED with Retry-After at once.
//
// Per-caller token buckets come from the policy's limits (perMinute,
// burst), keyed by caller name and limits, so a policy reload that
// changes a caller's limits takes effect at once. Per-space buckets for
// reads and writes (Shaping.SpaceReads, SpaceWrites) and per-project
// buckets per chatapi.QuotaClass (Shaping.Project) are opt-in, and off by
// default: Chat's own quotas are shared with other apps, so the broker
// cannot know them. A call over a bucket waits for its token up to
// Shaping.Wait (1 s), smoothing bursts, else it is answered 429 with
// Retry-After before anything goes upstream.
//
// Back-pressure: at most MaxInFlight (256) calls are forwarded at once,
// from the first attempt to the end of the response, back-off included;
// at most MaxWaiting (1024) calls wait at once, for a slot, a bucket or a
// hold. Past either, a call is answered 503 OVERLOADED with Retry-After
// at once, so an outage builds no unbounded queue. A waiting call holds
// its JSON body (at most 1 MiB) in memory.
//
// # requestId
//
// Chat answers a repeated requestId with what the first request created,
// and every caller shares the app's identity: a requestId sent as the
// caller wrote it would let one caller read another's message, or space,
// by reusing its id. So a caller's requestId goes to Chat as a UUID
// derived from the caller's policy name and the id (SHA-256, version 8):
// the same caller retrying with the same id is deduplicated, two callers
// sending the same id create two messages, and no caller can choose the
// id Chat sees. The audit record keeps the id as the caller sent it.
// Renaming a caller in the policy starts it on new ids. spaces.setup,
// whose requestId is in its JSON body, is sent as it is.
//
// # Upstream connections
//
// Every call goes through net/http's Transport; nothing in the broker
// frames or parses HTTP on the wire. To an https upstream that offers
// HTTP/2, as chat.googleapis.com does, calls go over HTTP/2 on one
// Transport all callers share: each answer arrives on its request's own
// stream. That Transport dials one connection at a time, so a burst of
// calls after an idle spell waits for one TLS handshake and shares it
// (a fresh Transport without that limit dials one per call: in the
// benchmark's pod section, 100 calls after 2 minutes idle cost the broker
// one resumed handshake and an app's own Go client 100 full ones); it
// opens more, one at a time, when Google's stream limit is reached. A
// connection that receives nothing for 30 s is pinged and closed if no
// answer comes in 15 s.
//
// HTTP/1.1 is used where the upstream offers nothing else: a plain-http
// upstream (the emulator on loopback, a local egress proxy), or an https
// one whose TLS handshake does not select h2 (the broker refuses that
// handshake before sending anything, says so once in the log, and uses
// HTTP/1.1 from then on). HTTP/1.1 ties an answer to its request by order
// alone, and net/http puts a connection back in its idle pool before it
// looks for bytes the upstream sent unasked; an upstream that sends an
// extra response can have it read as the next answer on that connection.
// So over HTTP/1.1 each caller has its own pool of connections (up to 64
// idle, for the 256 most recent callers): a stray answer can only reach
// the caller whose connection it came on, never another.
//
// Idle connections are kept for 90 s, and new TLS connections resume a
// cached session. Dial and TLS handshake are bounded at 10 s, response
// heads at 1 MiB. A caller leaving cancels its exchange. Requests carry
// no transparent compression (the caller gets Google's bytes as sent),
// redirects are never followed, and HTTPS_PROXY and NO_PROXY are
// honoured.
//
// Every wait goes through Config.Now and Config.After, so tests drive
// back-off, holds and limits with a fake clock.
//
// A Proxy is safe for concurrent use.
package proxy
