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
//     cluster issuer (ServiceAccountVerifier), or the secret it sends as
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
//  5. Cap the body at what the method carries and require JSON.
//  6. Get a token for the decided scope set from the TokenSource. None:
//     503, with Retry-After when a retry may help; Google refusing the
//     delegated subject: 403. An expired token is never sent.
//  7. Forward with httputil.ReverseProxy to the pinned upstream: the path
//     the policy decided on, the query as parsed, the caller's credential
//     replaced by the broker's token, bodies streamed both ways.
//  8. Explain Chat's two classic 403s (the app is not in the space; an
//     admin has not approved a chat.app.* scope) with a HintHeader, body
//     unchanged, and track each chat.app.* scope's approval (Approvals):
//     a 403 marks it not approved, the next success approved again. The
//     broker never refuses a call locally because of it.
//  9. Write one audit record: caller, method, space, subject, scopes,
//     decision, rule, status, hint, latency. Never message text, bodies or
//     credentials.
//
// Explain runs steps 1, 3 and 4 for a request without sending it; it is
// `chat-broker policy explain`.
//
// Every refusal is a Google-shaped error (chatapi.Error) with ErrorInfo
// domain "chat-broker", so client libraries report it as they report
// Chat's own errors.
//
// What it does not do (yet): retries and rate limits.
// A Proxy is safe for concurrent use.
package proxy
