// Package bench measures chat-broker's speed and memory on one machine,
// in one run, side by side with baselines: the broker's request path
// against the same fast upstream reached directly, through an
// httputil.ReverseProxy that injects a static header (tuned: idle
// connections kept and a buffer pool, the baseline the broker is held
// to; and bare, on http.DefaultTransport, which churns connections under
// load and flatters any proxy, so it is reported but no target), and
// through nginx doing the same (when nginx is installed).
//
// Run starts, all on loopback:
//
//   - a fast Chat-shaped upstream (Upstream) in a child process: fixed
//     small JSON for messages.get, messages.create and messages.list, and
//     streamed bodies for media upload and download;
//   - an emulator (package emulator) in this process, for its token
//     endpoint only: mints are rare because the broker caches tokens;
//   - the chat-broker binary ("chat-broker serve") as a child process, so
//     its CPU time, RSS and start-up time are its own;
//   - the baselines as child processes: the reverse proxies (tunedProxy
//     and bareProxy, in re-executed copies of this program) and nginx
//     with one worker and a generated configuration.
//
// The pod section measures what the other sections cannot see on bare
// loopback: the upstream as Google serves Chat, over TLS with HTTP/2, and
// far away. A child serves the same fast upstream with a certificate made
// for the run (the broker trusts it through SSL_CERT_FILE, as a private
// CA) and counts the TLS handshakes it completes, full and resumed; a
// toxiproxy relay in this process delays its bytes by 10 ms each way
// without reading them. An app calls it directly, with the transport
// Google's Go client uses, and through the broker; first under steady
// closed-loop load, then, after both have idled past net/http's 90 s
// idle connection timeout, in a burst of calls at once. At 20 ms a round
// trip, latency is mostly round trips, so the section shows what the
// broker's added hop costs against what its one shared HTTP/2 connection
// and resumed TLS sessions save; the handshake counts, read around each
// target's turn, show the saving itself.
//
// Load comes from drive, a closed-loop driver: a fixed number of workers,
// each sending its next request when the previous answer has been read
// in full. Every measurement is bounded in time and in request count.
// Latency is the service time a closed loop sees (there is no schedule
// to fall behind, so no coordinated-omission correction applies);
// throughput is requests per second over the measured slices.
//
// Timing measurements are interleaved: each measurement is split into
// slices and the targets take turns, so that a machine whose load drifts
// during the run penalizes every target alike. CPU time comes from
// /proc/<pid>/stat (utime+stime), memory from /proc/<pid>/status (VmRSS,
// VmHWM); the package therefore needs Linux.
//
// Nothing here asserts a speed: Run returns a Report, and checks the
// targets only to print which were met.
//
// The package is not safe for concurrent use: one Run at a time.
package bench
