package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Decision is the policy's answer for one call.
type Decision struct {
	// Allow is true only when a rule allows the call.
	Allow bool
	// Reason is "" when allowed, otherwise one of the Reason constants.
	// It becomes the ErrorInfo reason of the 403.
	Reason string
	// Rule is, for an allow, the rule that allowed the call
	// ("callers[0].allow[1]"); for a deny, the rule or field to change
	// ("callers[0].scopes").
	Rule string
	// Message is one sentence for the caller: what was refused and what to
	// change in which file and field. Empty when allowed.
	Message string
	// Scopes is, when allowed, the scope set the token must carry: the
	// narrowest scope the method accepts that the caller is granted.
	Scopes []chatapi.Scope
	// Subject is, when allowed, the user the token is minted for, in lower
	// case, or "" for app authentication.
	Subject string
}

// Reasons for a deny.
const (
	// ReasonMethodNotAllowed: no rule of the caller lists the method.
	ReasonMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// ReasonSpaceNotAllowed: rules list the method, but not in this space.
	ReasonSpaceNotAllowed = "SPACE_NOT_ALLOWED"
	// ReasonScopeNotGranted: the caller is granted no scope the method
	// accepts for this kind of authentication.
	ReasonScopeNotGranted = "SCOPE_NOT_GRANTED"
	// ReasonUserAuthRequired: a user-only method called without a subject.
	ReasonUserAuthRequired = "USER_AUTH_REQUIRED"
	// ReasonSubjectNotAllowed: the caller may not act as this user.
	ReasonSubjectNotAllowed = "SUBJECT_NOT_ALLOWED"
	// ReasonAppAuthRequired: an app-only method called with a subject.
	ReasonAppAuthRequired = "APP_AUTH_REQUIRED"
	// ReasonUnknownCaller: the caller is nil or comes from another Policy
	// (look callers up in the Policy that decides).
	ReasonUnknownCaller = "UNKNOWN_CALLER"
	// ReasonAdminAccessNotGranted: useAdminAccess=true from a caller
	// without adminAccess, or for a method that offers none.
	ReasonAdminAccessNotGranted = "ADMIN_ACCESS_NOT_GRANTED"
)

// Request is one call as the policy judges it.
type Request struct {
	Method *chatapi.Method
	// Space is "spaces/ID", or "" when the method names no space.
	Space string
	// Subject is "" for app authentication, else the email of the user to
	// act as through domain-wide delegation.
	Subject string
	// AdminAccess reports useAdminAccess=true: the subject acts as a
	// Workspace administrator, with one of the method's chat.admin.*
	// scopes.
	AdminAccess bool
	// Needs, when not nil, stand in for the method's own scope list: the
	// token must carry one scope of each (spaces.spaceEvents.list needs
	// one per kind of event its filter asks for). With AnyNeed, it
	// carries one for each need the caller is granted, and at least one
	// (spaces.spaceEvents.get reads an event of a kind not known yet).
	Needs   []chatapi.ScopeNeed
	AnyNeed bool
}

// Decide answers whether caller c may call method m in space as
// subject. space is "spaces/ID", or "" when the method names no space;
// subject is "" for app authentication, else the email of the user to act
// as through domain-wide delegation. Anything no rule allows is denied.
// It is DecideRequest for a plain call.
func (p *Policy) Decide(c *Caller, m *chatapi.Method, space, subject string) Decision {
	return p.DecideRequest(c, Request{Method: m, Space: space, Subject: subject})
}

// DecideRequest answers whether caller c may make the call req.
//
// c must come from p (CallerBySecret or CallerByName on the same
// Policy); a caller from an earlier policy is denied, so a reload can
// never mix one policy's identity with another's rules.
//
// The cost does not depend on the number of callers, and only on the
// number of the caller's rules that list m.
func (p *Policy) DecideRequest(c *Caller, req Request) Decision {
	m, space, subject := req.Method, req.Space, req.Subject
	if c == nil || c.policy != p {
		return deny(ReasonUnknownCaller, "", "the caller is not in the current policy; identify it again")
	}
	if m == nil {
		return deny(ReasonMethodNotAllowed, c.path+".allow", "the request matches no Chat method")
	}

	// 1. Rules that list the method.
	rules := c.byMethod[m.ID]
	if len(rules) == 0 {
		return deny(ReasonMethodNotAllowed, c.path+".allow",
			fmt.Sprintf("caller %q may not call %s; add it to %s.allow[].methods in %s", c.Name, m.ID, c.path, p.where()))
	}

	// 2. A rule that covers the space. A method that names no space
	// matches only spaces: ["*"]: a list of spaces cannot limit it.
	var allowed *rule
	for _, r := range rules {
		if r.allSpaces || (space != "" && m.NamesSpace() && r.spaces[space]) {
			allowed = r
			break
		}
	}
	if allowed == nil {
		return p.denySpace(c, m, space, rules)
	}

	// 3. Authentication: the app itself, or a user it may act as.
	accepted := m.AppScopes
	how := "with app authentication"
	if subject == "" {
		if m.UserOnly() {
			return deny(ReasonUserAuthRequired, c.path+".subjects",
				fmt.Sprintf("caller %q called %s without a subject, but it needs user authentication through domain-wide delegation; name a subject allowed in %s.subjects in %s",
					c.Name, m.ID, c.path, p.where()))
		}
	} else {
		subject = strings.ToLower(subject)
		if !c.mayActAs(subject) {
			return p.denySubject(c, subject)
		}
		if len(m.UserScopes) == 0 {
			return deny(ReasonAppAuthRequired, allowed.path,
				fmt.Sprintf("caller %q called %s as %q, but it accepts only app authentication; call it without a subject", c.Name, m.ID, subject))
		}
		accepted, how = m.UserScopes, "as a user"
	}
	if req.AdminAccess {
		switch {
		case subject == "":
			return deny(ReasonUserAuthRequired, c.path+".subjects",
				fmt.Sprintf("caller %q called %s with useAdminAccess=true, which acts as a Workspace administrator; name the administrator as the subject (allowed in %s.subjects in %s)",
					c.Name, m.ID, c.path, p.where()))
		case !c.AdminAccess:
			return deny(ReasonAdminAccessNotGranted, c.path+".adminAccess",
				fmt.Sprintf("caller %q may not call %s with useAdminAccess=true; set %s.adminAccess: true and grant a chat.admin.* scope in %s, or call without useAdminAccess",
					c.Name, m.ID, c.path, p.where()))
		case len(m.AdminScopes) == 0:
			return deny(ReasonAdminAccessNotGranted, allowed.path,
				fmt.Sprintf("%s offers no admin access; call it without useAdminAccess", m.ID))
		}
		accepted, how = m.AdminScopes, "with admin access"
	}
	if req.Needs != nil {
		return p.decideNeeds(c, req, allowed, how)
	}

	// 4. The narrowest accepted scope the caller is granted, unless the
	// rule prefers another it grants.
	scope := firstPreferred(allowed.prefer, accepted, c.granted)
	// Chat refuses a chat.bot token minted for a user: chat.bot is for
	// app authentication only. The catalog never lists it as a user
	// scope, and this keeps a future catalog mistake from minting such a
	// token.
	if scope == "" || (subject != "" && scope == chatapi.ScopeBot) {
		return deny(ReasonScopeNotGranted, c.path+".scopes",
			fmt.Sprintf("caller %q may not call %s %s: it needs %s, which %s.scopes does not grant; add it to %s.scopes in %s",
				c.Name, m.ID, how, oneOf(accepted), c.path, c.path, p.where()))
	}
	return Decision{Allow: true, Rule: allowed.path, Scopes: []chatapi.Scope{scope}, Subject: subject}
}

// decideNeeds picks a scope for each need of req, for calls whose scopes
// depend on what they ask for.
func (p *Policy) decideNeeds(c *Caller, req Request, allowed *rule, how string) Decision {
	var scopes []chatapi.Scope
	var missing []chatapi.ScopeNeed
	for _, n := range req.Needs {
		list := n.App
		if req.Subject != "" {
			list = n.User
		}
		s := firstPreferred(allowed.prefer, list, c.granted)
		switch {
		case s == "":
			missing = append(missing, n)
		case !slices.Contains(scopes, s):
			scopes = append(scopes, s)
		}
	}
	if len(missing) > 0 && (!req.AnyNeed || len(scopes) == 0) {
		n := missing[0]
		list := n.App
		if req.Subject != "" {
			list = n.User
		}
		what := "for " + n.What
		if req.AnyNeed {
			what = "for any kind of event"
		}
		if len(list) == 0 {
			return deny(ReasonScopeNotGranted, c.path+".scopes",
				fmt.Sprintf("caller %q may not call %s %s %s: no scope allows that", c.Name, req.Method.ID, how, what))
		}
		return deny(ReasonScopeNotGranted, c.path+".scopes",
			fmt.Sprintf("caller %q may not call %s %s %s: it needs %s, which %s.scopes does not grant; add it to %s.scopes in %s",
				c.Name, req.Method.ID, how, what, oneOf(list), c.path, c.path, p.where()))
	}
	if req.Subject != "" && slices.Contains(scopes, chatapi.ScopeBot) {
		return deny(ReasonScopeNotGranted, c.path+".scopes", "chat.bot never goes with a subject")
	}
	return Decision{Allow: true, Rule: allowed.path, Scopes: scopes, Subject: req.Subject}
}

// firstPreferred returns the first of prefer that accepted lists and
// granted holds, else the narrowest accepted scope granted, else "".
func firstPreferred(prefer, accepted []chatapi.Scope, granted map[chatapi.Scope]bool) chatapi.Scope {
	for _, s := range prefer {
		if granted[s] && slices.Contains(accepted, s) {
			return s
		}
	}
	return firstGranted(accepted, granted)
}

func deny(reason, rule, msg string) Decision {
	return Decision{Reason: reason, Rule: rule, Message: msg}
}

func (p *Policy) denySpace(c *Caller, m *chatapi.Method, space string, rules []*rule) Decision {
	if space == "" || !m.NamesSpace() {
		return deny(ReasonSpaceNotAllowed, c.path+".allow",
			fmt.Sprintf(`caller %q may not call %s: it names no space, so only a rule with spaces: ["*"] allows it; add {methods: [%s], spaces: ["*"]} to %s.allow in %s`,
				c.Name, m.ID, m.ID, c.path, p.where()))
	}
	fields := make([]string, len(rules))
	for i, r := range rules {
		fields[i] = r.path + ".spaces"
	}
	return deny(ReasonSpaceNotAllowed, fields[0],
		fmt.Sprintf("caller %q may not call %s in %s; add %q to %s in %s",
			c.Name, m.ID, space, space, strings.Join(fields, " or "), p.where()))
}

func (p *Policy) denySubject(c *Caller, subject string) Decision {
	msg := fmt.Sprintf("caller %q may not act as %q; add it to %s.subjects in %s", c.Name, subject, c.path, p.where())
	if !validEmail(subject) {
		msg = fmt.Sprintf("caller %q may not act as %q: a subject is a user's email address, as listed in %s.subjects in %s", c.Name, subject, c.path, p.where())
	}
	return deny(ReasonSubjectNotAllowed, c.path+".subjects", msg)
}

// mayActAs reports whether the caller's subjects allow the lower-case
// email subject, exactly or through "*@domain".
func (c *Caller) mayActAs(subject string) bool {
	// Only a well-formed address can match, so "a@b@example.com" never
	// passes as a user of example.com.
	if !validEmail(subject) {
		return false
	}
	if c.users[subject] {
		return true
	}
	_, domain, _ := strings.Cut(subject, "@")
	return c.domains[domain]
}

// where names the policy file in messages.
func (p *Policy) where() string {
	if p.file == "" {
		return "the policy file"
	}
	return p.file
}
