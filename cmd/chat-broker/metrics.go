package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/chat-broker/chat-broker/broker"
	"github.com/chat-broker/chat-broker/proxy"
)

// approvalCollector exports the state of each chat.app.* scope the policy
// grants, one series per scope and state with value 1 for the current
// state (the kube-state-metrics style), so an alert is a plain
// chat_broker_app_scope_approval{state="not_approved"} == 1.
type approvalCollector struct {
	px   *proxy.Proxy
	desc *prometheus.Desc
}

func newApprovalCollector(px *proxy.Proxy) *approvalCollector {
	return &approvalCollector{px: px, desc: prometheus.NewDesc(
		"chat_broker_app_scope_approval",
		"Whether a Workspace admin has approved a chat.app.* scope, as the broker last saw it (1 for the current state).",
		[]string{"scope", "state"}, nil)}
}

func (c *approvalCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *approvalCollector) Collect(ch chan<- prometheus.Metric) {
	for _, a := range c.px.Approvals() {
		for _, st := range []proxy.ApprovalState{proxy.ApprovalUnknown, proxy.Approved, proxy.NotApproved} {
			v := 0.0
			if a.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, string(a.Scope), string(st))
		}
	}
}

// brokerCollector exports the token broker's counters, the time left on
// its tokens, the reloads, and which key is in force (its e-mail and
// fingerprint, never the key).
type brokerCollector struct {
	b        *broker.Broker
	in       *instance
	mints    *prometheus.Desc
	cache    *prometheus.Desc
	attempts *prometheus.Desc
	expiry   *prometheus.Desc
	reloads  *prometheus.Desc
	key      *prometheus.Desc
}

func newBrokerCollector(b *broker.Broker, in *instance) *brokerCollector {
	return &brokerCollector{
		b: b, in: in,
		mints:    prometheus.NewDesc("chat_broker_token_mints_total", "Token mints, by outcome: ok, transient (retried) or permanent (needs a fix).", []string{"outcome"}, nil),
		cache:    prometheus.NewDesc("chat_broker_token_cache_total", "Token look-ups, by result: hit or miss (waited for a mint).", []string{"result"}, nil),
		attempts: prometheus.NewDesc("chat_broker_token_mint_attempts_total", "Mint attempts, by kind: background (refresh ahead) or sync (a caller waited).", []string{"kind"}, nil),
		expiry:   prometheus.NewDesc("chat_broker_token_expiry_seconds", "Least time left before a cached token expires (0 if none).", nil, nil),
		reloads:  prometheus.NewDesc("chat_broker_reloads_total", "Reloads of the key and policy files, by result: ok or rejected.", []string{"result"}, nil),
		key:      prometheus.NewDesc("chat_broker_key_info", "The service-account key in force (1).", []string{"client_email", "fingerprint"}, nil),
	}
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.mints, c.cache, c.attempts, c.expiry, c.reloads, c.key} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	counter := func(d *prometheus.Desc, v int64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label)
	}
	counter(c.mints, s.Mints, "ok")
	counter(c.mints, s.TransientErrors, "transient")
	counter(c.mints, s.PermanentErrors, "permanent")
	counter(c.cache, s.CacheHits, "hit")
	counter(c.cache, s.CacheMisses, "miss")
	counter(c.attempts, s.BackgroundAttempts, "background")
	counter(c.attempts, s.SyncAttempts, "sync")
	ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, c.b.SecondsUntilExpiry())
	if r := c.in.reloader; r != nil {
		counter(c.reloads, r.reloads.Load(), "ok")
		counter(c.reloads, r.errors.Load(), "rejected")
	}
	if k := c.in.currentKey.Load(); k != nil {
		ch <- prometheus.MustNewConstMetric(c.key, prometheus.GaugeValue, 1, k.ClientEmail, k.Fingerprint())
	}
}

// newRegistry returns the admin listener's metrics registry and the
// proxy's series in it.
func newRegistry() (*prometheus.Registry, *proxy.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg, proxy.NewMetrics(reg)
}
