// Package identity tells the broker who a caller is from facts the caller
// cannot forge: the kernel's peer credentials on a Unix socket
// (ConnContext, PeerFrom) and Kubernetes projected service-account tokens
// verified against the cluster issuer (ServiceAccountVerifier). It never
// looks at an IP address or a free-form header, and it knows nothing of
// the policy: mapping an identity to a caller is the policy's job.
//
// The verifier fetches the issuer's discovery document and keys on first
// use. Keys are stored before any caller is answered; a token naming an
// unknown key id fetches the keys again at most every 5 s, a known key
// id with a bad signature never does, and a failed fetch keeps the old
// keys. Verified tokens are cached until they expire.
//
// Everything here is safe for concurrent use.
package identity
