// Package redistest runs a real redis-server (Debian's package) for
// tests: on a free loopback port, without persistence, stopped at the
// test's end, and able to stop and start again on the same port to
// show what a broker does while Redis is away. Where redis-server is
// not installed the test is skipped with a message, unless
// CHAT_BROKER_REQUIRE_REDIS is set (CI sets it), where it fails.
// StartCluster runs several as a Redis Cluster.
package redistest
