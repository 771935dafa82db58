package proxy

import (
	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/approvals"
)

// Approval is one chat.app.* scope's approval state as the broker has
// seen it (internal/approvals), for the admin listener.
type (
	Approval      = approvals.Approval
	ApprovalState = approvals.State
)

// The states of an Approval.
const (
	ApprovalUnknown = approvals.Unknown
	Approved        = approvals.Approved
	NotApproved     = approvals.NotApproved
)

// Approvals reports the state of each chat.app.* scope the current policy
// grants to any caller, sorted by scope. The broker never refuses a call
// because a scope looked unapproved: an admin may approve at any time, and
// the next successful call flips the state back.
func (p *Proxy) Approvals() []Approval {
	var granted []chatapi.Scope
	for _, c := range p.policy.Load().Callers() {
		granted = append(granted, c.Scopes...)
	}
	return p.approvals.Report(granted)
}
