package proxy

import (
	"strconv"
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
}

// NewMetrics registers the proxy's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_broker_requests_total",
			Help: "Calls handled, by caller, Chat method and status class (2xx, 4xx, 5xx).",
		}, []string{"caller", "method", "code"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_broker_refusals_total",
			Help: "Calls the broker refused before forwarding, by reason (policy denials such as SPACE_NOT_ALLOWED, and request hygiene).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_broker_request_duration_seconds",
			Help:    "Time from the request to the end of the response, by Chat method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chat_broker_upstream_latency_seconds",
			Help:    "Time from sending a call to Chat to its response headers, by Chat method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_broker_rate_limited_total",
			Help: "Calls answered 429 by the broker's own limits, by caller.",
		}, []string{"caller"}),
	}
	reg.MustRegister(m.requests, m.refusals, m.duration, m.upstream, m.rateLimited)
	return m
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
	m.requests.WithLabelValues(caller, method, strconv.Itoa(status/100)+"xx").Inc()
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
