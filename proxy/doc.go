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
//  2. Identify the caller by the secret it sends as its bearer token
//     (policy.Policy.CallerBySecret). Unknown: 401.
//  3. Route verb and path to a catalog method (chatapi.Router). Unknown:
//     404; known path with another verb: 405.
//  4. Decide with the policy (default deny). Denied: 403 whose ErrorInfo
//     reason and message say which rule to change.
//  5. Cap the body at what the method carries and require JSON.
//  6. Get a token for the decided scope set from the TokenSource. None:
//     503 with Retry-After; an expired token is never sent.
//  7. Forward with httputil.ReverseProxy to the pinned upstream: the path
//     the policy decided on, the query as parsed, the caller's credential
//     replaced by the broker's token, bodies streamed both ways.
//  8. Write one audit record: caller, method, space, scopes, decision,
//     rule, status, latency. Never message text, bodies or credentials.
//
// Every refusal is a Google-shaped error (chatapi.Error) with ErrorInfo
// domain "chat-broker", so client libraries report it as they report
// Chat's own errors.
//
// What it does not do (yet): retries, rate limits and delegated subjects.
// A Proxy is safe for concurrent use.
package proxy
