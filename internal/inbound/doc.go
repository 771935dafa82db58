// Package inbound checks a caller's request before the broker reads
// anything else from it: only origin-form targets with canonical paths;
// no method overrides, caller-supplied Google credentials, forwarding
// headers, gRPC or protobuf bodies, repeated query parameters, or system
// parameters that change the wire format, identity or billing; bodies
// capped at what the method carries and JSON where Chat takes JSON. Each
// check refuses (a refusal.Error with a reason and the fix) rather than
// repairs: a request that can be read more than one way is not guessed
// at.
//
// It also says which request headers are never forwarded (Dropped) and
// which are the connection's own (HopByHop). It knows nothing of the
// policy or the upstream. The functions are safe for concurrent use.
package inbound
