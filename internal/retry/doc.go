// Package retry holds the retry rules the broker shares: the exponential
// back-off and its jitter (used for calls to Chat and for token mints),
// the reading of a Retry-After header, and a retry budget that keeps an
// outage from multiplying the load. When a call may be retried at all is
// the proxy's decision, not this package's. Everything here is safe for
// concurrent use.
package retry
