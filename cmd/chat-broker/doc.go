// Command chat-broker is a sidecar that holds a Google Chat app's
// service-account key so that the app containers beside it never do. The
// README says how to run it; docs/architecture.md tells how a call goes
// through it and how the code is laid out.
//
// Subcommands are cobra commands built anew by each call of run (no flag
// globals), each with its own flags, also read from CHAT_BROKER_*
// variables, validated before anything listens; docs/cli.md is the
// users' reference:
//
//	serve     the broker: proxy listener (TCP, and a Unix socket with --socket)
//	          and admin listener (/healthz, /readyz, /startupz, /approvals,
//	          /metrics, POST /quitquitquit); key and policy reload on change
//	          or SIGHUP
//	demo      emulator + broker in one process, its key and policy in a folder
//	policy    check policy files; explain what the broker would do with a
//	          request; add a caller (a new secret, its hash, the rule)
//	wait      exit 0 once a broker is ready (exec probes, init ordering)
//	emulator  the emulator alone, writing a key file that points at it
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
// and the fix, with no Go package prefix. Exit codes (errors.go): 0 yes,
// 1 no (refused, invalid when asked to judge, not ready) or a failure at
// run time, 2 a usage error or a file that cannot be used.
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
