package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

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

// newRegistry returns the admin listener's metrics registry.
func newRegistry(px *proxy.Proxy) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newApprovalCollector(px),
	)
	return reg
}
