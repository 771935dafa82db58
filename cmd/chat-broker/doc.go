// Command chat-broker is a sidecar that holds a Google Chat app's
// service-account key so that the app containers beside it never do. The
// README says how to run it; docs/architecture.md tells how a call goes
// through it and how the code is laid out.
//
// Subcommands, each with its own flags (also read from CHAT_BROKER_*
// variables), validated before anything listens:
//
//	serve     the broker: proxy listener (TCP, and a Unix socket with --socket)
//	          and admin listener (/healthz, /readyz, /startupz, /approvals,
//	          /metrics, POST /quitquitquit); key and policy reload on change
//	          or SIGHUP
//	demo      emulator + broker in one process with a generated key and policy
//	emulator  the emulator alone, writing a key file that points at it
//	policy    check policy files; explain what the broker would do with a request
//	wait      exit 0 once a broker is ready (exec probes, init ordering)
//	chaos     the retry scenario: creates through the broker against a faulty emulator
//	hash-secret, version
//
// What it promises: the key, Google tokens and caller secrets appear in
// none of its output (secrets_test.go scans every main flow's output for
// them). serve
// writes one JSON audit line per call to stdout, in batches (every
// --audit-flush-interval, at 64 KiB, and at shutdown), and its
// operational log to stderr. On SIGTERM it turns not ready, lets calls in
// flight finish within --drain, and exits 0. Errors name the flag or file
// and the fix; exit code 2 is a usage error, 1 a failure at run time.
//
// The Go runtime: GOGC=200 unless GOGC is set, and unless GOMEMLIMIT is
// set a memory limit of 90% of the container's cgroup limit (v2 or v1,
// read with automemlimit in memlimit.go); serve's start-up log line
// reports the limit in force (go_memory_limit).
//
// Concurrency: serve handles calls concurrently, each request on its own
// goroutine, as net/http does. A reload swaps the key or policy whole, after validating
// it; a call in flight keeps the policy it started with.
//
// What it does not do: it holds none of the request path's logic. It
// parses flags, loads files and wires the listeners, package proxy,
// policy and broker together; refusing, deciding, shaping, minting and
// forwarding are theirs.
package main
