package proxy

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus series. Every label value comes from
// a bounded set: caller names from the policy, method ids from the
// catalog, reasons from the broker's own list, status classes. No label
// ever carries a credential, a message or a space id.
type Metrics struct {
	requests    *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	upstream    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	exhausted   *prometheus.CounterVec
	inFlight    prometheus.Gauge
	waiting     prometheus.Gauge
}

// NewMetrics registers the proxy's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: counter("chat_broker_requests_total",
			"Calls handled, by caller, Chat method and status class (2xx, 4xx, 5xx).", "caller", "method", "code"),
		refusals: counter("chat_broker_refusals_total",
			"Calls the broker refused before forwarding, by reason (policy denials such as SPACE_NOT_ALLOWED, and request hygiene).", "reason"),
		duration: histogram("chat_broker_request_duration_seconds",
			"Time from the request to the end of the response, by Chat method.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}),
		upstream: histogram("chat_broker_upstream_latency_seconds",
			"Time from sending a call to Chat to the response headers of its last attempt (retries and their back-off included), by Chat method.",
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}),
		rateLimited: counter("chat_broker_rate_limited_total",
			"Calls answered 429 by the broker's own limits, by caller.", "caller"),
		attempts: counter("chat_broker_upstream_attempts_total",
			"Attempts sent to Chat, retries included, by Chat method and outcome (2xx, 4xx, 5xx, or error for no response).", "method", "code"),
		retries: counter("chat_broker_retries_total",
			"Attempts after the first, by Chat method and what the previous one got (401, 429, 5xx, reset: no answer, or none in time; connect: nothing was sent).", "method", "reason"),
		exhausted: counter("chat_broker_retry_budget_exhausted_total",
			"Retries not made because the retry budget (20% of calls plus 10/s by default) was spent, by Chat method.", "method"),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_broker_in_flight",
			Help: "Calls being forwarded to Chat now (at most --max-in-flight)."}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_broker_waiting",
			Help: "Calls waiting now for a slot, a rate-limit token or the end of a hold (at most --max-waiting)."}),
	}
	reg.MustRegister(m.requests, m.refusals, m.duration, m.upstream, m.rateLimited,
		m.attempts, m.retries, m.exhausted, m.inFlight, m.waiting)
	return m
}

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// histogram is a series of latencies by Chat method.
func histogram(name, help string, buckets []float64) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, []string{"method"})
}

func (m *Metrics) attempt(method string, resp *http.Response, err error) {
	if m == nil {
		return
	}
	code := "error"
	if err == nil {
		code = codeClass(resp.StatusCode)
	}
	m.attempts.WithLabelValues(method, code).Inc()
}

func (m *Metrics) retry(method, reason string) {
	if m != nil {
		m.retries.WithLabelValues(method, reason).Inc()
	}
}

func (m *Metrics) budgetExhausted(method string) {
	if m != nil {
		m.exhausted.WithLabelValues(method).Inc()
	}
}

func (m *Metrics) setInFlight(n int) {
	if m != nil {
		m.inFlight.Set(float64(n))
	}
}

func (m *Metrics) setWaiting(n int64) {
	if m != nil {
		m.waiting.Set(float64(n))
	}
}

// rateLimitReasons are the refusals counted as rate limiting.
var rateLimitReasons = map[string]bool{"RATE_LIMITED": true, "SPACE_RATE_LIMITED": true, "TOO_MANY_FAILED_ATTEMPTS": true, "OVERLOADED": true}

func (m *Metrics) observe(c *call, status int, latency time.Duration) {
	if m == nil {
		return
	}
	method := c.method
	if method == "" {
		method = "unknown"
	}
	caller := c.caller
	if caller == "" {
		caller = "unknown"
	}
	m.requests.WithLabelValues(caller, method, codeClass(status)).Inc()
	m.duration.WithLabelValues(method).Observe(latency.Seconds())
	if c.upstreamStatus == 0 && c.reason != "" {
		m.refusals.WithLabelValues(c.reason).Inc()
		if rateLimitReasons[c.reason] {
			m.rateLimited.WithLabelValues(caller).Inc()
		}
	}
	if c.upstreamLatency > 0 {
		m.upstream.WithLabelValues(method).Observe(c.upstreamLatency.Seconds())
	}
}

// codeClasses are the status-class label values, built once: the label is
// set on every call and every attempt, and a fresh string each time was a
// visible share of the benchmark's allocations.
var codeClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

func codeClass(status int) string {
	if c := status / 100; c >= 0 && c < len(codeClasses) {
		return codeClasses[c]
	}
	return "other"
}
