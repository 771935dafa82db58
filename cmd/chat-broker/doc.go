// Command chat-broker is a sidecar that holds a Google Chat app's
// service-account key so that the app containers beside it never do; see
// the README for usage.
//
// main.go sets up signals, exit codes and the garbage collector's targets
// (GOGC=200 unless set; unless GOMEMLIMIT is set, a memory limit of 90% of
// the container's cgroup v2 limit, read in memlimit.go). run.go
// dispatches the subcommands, each with its own flag set, validated before
// anything listens:
//
//	serve     the broker: proxy listener, admin listener (/healthz, /readyz,
//	          /startupz, /approvals, /metrics, POST /quitquitquit)
//	demo      emulator + broker in one process with a generated key and policy
//	emulator  the emulator alone, writing a key file that points at it
//	policy    check policy files; explain what the broker would do with a request
//	wait      exit 0 once a broker is ready (exec probes, init ordering)
//	chaos     the retry scenario: creates through the broker against a faulty emulator
//	hash-secret, version
//
// serve writes one JSON audit line per call to stdout, in batches
// (audit.go: every --audit-flush-interval, 64 KiB, and at shutdown), and
// its operational log to stderr.
//
// Errors name the flag or file and the fix; exit code 2 is a usage error,
// 1 a failure at run time.
package main
