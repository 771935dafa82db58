package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Call is one kind of request the driver sends over and over.
type Call struct {
	Method string // GET or POST
	URL    string // absolute
	Body   []byte // sent with Content-Type: application/json when not nil
	// Bearers are the caller secrets sent as Authorization: Bearer …,
	// taken in turn; empty sends none.
	Bearers []string
	// Header is added to every request.
	Header http.Header
}

// Result is what one drive saw.
type Result struct {
	Requests int           // answered with status 200 and read in full
	Errors   int           // transport errors and non-200 answers
	FirstErr string        // the first error, for the report
	Elapsed  time.Duration // from the first request sent to the last answer read
	// Latencies are the completed requests' latencies, unsorted.
	Latencies []time.Duration
}

// Add merges o into r (slices of one measurement).
func (r *Result) Add(o Result) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	if r.FirstErr == "" {
		r.FirstErr = o.FirstErr
	}
	r.Elapsed += o.Elapsed
	r.Latencies = append(r.Latencies, o.Latencies...)
}

// RPS is completed requests per second.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q <= 1) of the latencies, by
// nearest rank; it sorts them in place.
func (r *Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	if !slices.IsSorted(r.Latencies) {
		slices.Sort(r.Latencies)
	}
	i := int(q*float64(len(r.Latencies))+0.999999) - 1
	return r.Latencies[max(0, min(i, len(r.Latencies)-1))]
}

// requestTimeout bounds one request, so a stalled target ends a
// measurement with errors instead of hanging the run.
const requestTimeout = 10 * time.Second

// newClient returns a keep-alive HTTP/1.1 client for concurrency
// workers: one idle connection per worker is kept, so a closed loop never
// dials after warm-up. It does not ask for gzip, as Chat clients may, to
// keep the bodies the same on every path.
func newClient(concurrency int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        concurrency + 16,
			MaxIdleConnsPerHost: concurrency + 16,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		// A redirect is an answer to measure, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// drive sends c from concurrency workers in a closed loop for d or until
// limit requests have been sent, whichever comes first, and returns what
// it saw. It stops early when ctx ends.
func drive(ctx context.Context, client *http.Client, c Call, concurrency int, d time.Duration, limit int) Result {
	var (
		sent     atomic.Int64
		mu       sync.Mutex
		total    Result
		wg       sync.WaitGroup
		start    = time.Now()
		deadline = start.Add(d)
	)
	per := min(limit/concurrency+1, 1<<20)
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := Result{Latencies: make([]time.Duration, 0, min(per, 4096))}
			for i := w; ; i += concurrency {
				if ctx.Err() != nil || time.Now().After(deadline) || sent.Add(1) > int64(limit) {
					break
				}
				t0 := time.Now()
				err := once(ctx, client, c, i)
				lat := time.Since(t0)
				if err != nil {
					res.Errors++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
					continue
				}
				res.Requests++
				res.Latencies = append(res.Latencies, lat)
			}
			mu.Lock()
			total.Add(res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	return total
}

// once sends the i-th request of c and reads the answer in full.
func once(ctx context.Context, client *http.Client, c Call, i int) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var body io.Reader
	if c.Body != nil {
		body = bytes.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return err
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	if c.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(c.Bearers) > 0 {
		req.Header.Set("Authorization", "Bearer "+c.Bearers[i%len(c.Bearers)])
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", c.Method, req.URL.Path, resp.StatusCode)
	}
	return err
}
