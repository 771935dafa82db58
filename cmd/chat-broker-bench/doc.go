// Command chat-broker-bench measures chat-broker's speed and memory on
// this machine, in one run, against baselines on the same fast upstream:
//
//	go run ./cmd/chat-broker-bench                 # the full run, a few minutes
//	go run ./cmd/chat-broker-bench --quick         # seconds; numbers are rough
//	go run ./cmd/chat-broker-bench --only throughput,cold --json
//	go run ./cmd/chat-broker-bench --only pod --pod-idle 100s
//
// It builds ./cmd/chat-broker as deploy/Dockerfile does (static, trimmed;
// or takes --broker-bin), runs it as a child
// process in front of a minimal Chat-shaped upstream, and drives load
// with a closed-loop driver at concurrency 1 and 32, for GET
// spaces.messages.get and POST spaces.messages.create. The same load goes
// to the upstream directly, through a bare httputil.ReverseProxy that
// injects a static Authorization header, and through nginx doing the
// same when nginx is installed ("skipped: nginx not installed"
// otherwise). It prints req/s, p50/p90/p99, the latency added over
// direct, ratios, CPU time per 1,000 requests and RSS; allocations per
// request; a cold herd of concurrent first calls and the mints it caused;
// a 200 MB media upload and download (RSS growth); start-up time and idle
// RSS; and a 10,000-caller policy against a 1-rule one. The pod section
// puts the upstream where a pod finds Google: over TLS with HTTP/2, 10 ms
// away each way through a latency-injecting relay (toxiproxy), and
// compares an app calling it directly, as Google's Go client would, with
// the same app through the broker: steady load at concurrency 32, then,
// after 2 minutes idle (--pod-idle; long enough for net/http to close
// idle connections), 100 calls at once (--pod-burst); for each, p50, p99
// and the TLS handshakes, full and resumed, the upstream saw. The last
// table says which of the project's targets this run met.
//
// Every measurement is bounded in time and request count, and
// everything listens on loopback. The numbers are only as quiet as the
// machine: the load, the broker and the upstream share its CPUs, and the
// load average is printed with the table.
//
// See package bench for how each figure is measured.
package main
