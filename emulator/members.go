package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi"
)

// Chat's refusals of membership changes it does not support.
const (
	msgAppAuthMembers  = "External users, Google Groups and Chat apps cannot be added with app authentication. Use user authentication instead."
	msgAppAuthNoRemove = "Google Groups and Chat apps cannot be removed with app authentication. Use user authentication instead."
	msgOtherApps       = "Creating memberships for other Chat apps isn't supported; only the calling app (users/app) can be added."
	msgAdminNoApps     = "Creating or deleting app memberships isn't supported using admin access."
	msgAppRole         = "The role of a Chat app's membership cannot be changed."
)

var membershipFields = fieldSet("affiliation", "createTime", "deleteTime", "groupMember", "member", "name", "role", "state")

var userNameRE = regexp.MustCompile(`^users/[^/]+$`)

// findMembershipLocked finds a membership by member id: "app" for the
// calling app, a user id, or a user's email alias (case-insensitive). idx
// is the index in sp.humans, -1 for the app.
func (sp *space) findMembershipLocked(id string) (m membership, idx int, ok bool) {
	if id == "app" {
		if !sp.appMember {
			return membership{}, 0, false
		}
		return appMembership(sp.appJoined), -1, true
	}
	for i, h := range sp.humans {
		m := h.membership()
		if m.id == id || (strings.Contains(id, "@") && strings.EqualFold(m.id, id)) {
			return m, i, true
		}
	}
	return membership{}, 0, false
}

// hasHumanLocked reports whether user ("users/…") is a human member.
func (sp *space) hasHumanLocked(user string) bool {
	_, idx, ok := sp.findMembershipLocked(strings.TrimPrefix(user, "users/"))
	return ok && idx >= 0
}

func validRole(role string) bool { return role == "ROLE_MEMBER" || role == "ROLE_MANAGER" }

// memberInput is the member a create request names.
type memberInput struct {
	user  string // "users/…"
	isApp bool
	role  string
}

// readMemberInput reads a Membership body for spaces.members.create.
func (c *call) readMemberInput() (*memberInput, *chatapi.Error) {
	fields, err := c.readBody("membership", membershipFields)
	if err != nil {
		return nil, err
	}
	if _, ok := fields["groupMember"]; ok {
		if c.tok.subject == "" {
			return nil, invalidArgument(msgAppAuthMembers)
		}
		return nil, chatapi.NewError(http.StatusNotImplemented, "chat-broker emulator: Google Group memberships are not implemented")
	}
	raw, ok := fields["member"]
	if !ok {
		return nil, invalidArgument("Membership.member is required: set member.name to users/{user} and member.type to HUMAN.")
	}
	var member struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &member) != nil {
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'membership.member' (type.googleapis.com/google.chat.v1.User), %s", raw))
	}
	in := &memberInput{user: member.Name, role: "ROLE_MEMBER"}
	switch member.Type {
	case "", "TYPE_UNSPECIFIED", "HUMAN":
		in.isApp = member.Name == appUser
	case "BOT":
		in.isApp = true
	default:
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'membership.member.type' (type.googleapis.com/google.chat.v1.User.Type), %q", member.Type))
	}
	if !userNameRE.MatchString(member.Name) {
		return nil, invalidArgument(fmt.Sprintf("Invalid member name %q: want users/{user}, users/{email} or, for the calling app, users/app.", member.Name))
	}
	if in.isApp && member.Name != appUser {
		return nil, invalidArgument(msgOtherApps)
	}
	if role, err := stringField(fields, "membership", "role"); err != nil {
		return nil, err
	} else if role != "" {
		if !validRole(role) {
			return nil, invalidArgument(fmt.Sprintf("Invalid value at 'membership.role' (type.googleapis.com/google.chat.v1.Membership.MembershipRole), %q", role))
		}
		in.role = role
	}
	return in, nil
}

// memberScopesOK checks the scope a user-authenticated membership change
// needs beyond the catalog's list: chat.memberships.app lets the app add
// or remove only itself, and chat.import covers only human members.
// chat.memberships, the catalog's first choice, covers both.
func (c *call) memberScopesOK(isApp bool) *chatapi.Error {
	switch {
	case c.tok.subject == "":
		if isApp {
			return invalidArgument(msgAppAuthNoRemove)
		}
	case c.admin:
		if isApp {
			return invalidArgument(msgAdminNoApps)
		}
	case isApp:
		if !hasAny(c.tok.scopes, []chatapi.Scope{chatapi.ScopeMemberships, chatapi.ScopeMembershipsApp}) {
			return c.insufficient(c.meta)
		}
	default:
		if !hasAny(c.tok.scopes, []chatapi.Scope{chatapi.ScopeMemberships, chatapi.ScopeImport}) {
			return c.insufficient(c.meta)
		}
	}
	return nil
}

// createMember adds a human user, or with user authentication the calling
// app (users/app), to a space. App authentication adds only humans.
func (c *call) createMember() (any, *chatapi.Error) {
	in, err := c.readMemberInput()
	if err != nil {
		return nil, err
	}
	if c.tok.subject == "" && in.isApp {
		return nil, invalidArgument(msgAppAuthMembers)
	}
	if err := c.memberScopesOK(in.isApp); err != nil {
		return nil, err
	}
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		now := c.e.now()
		var m membership
		if in.isApp {
			if sp.appMember {
				return nil, alreadyMember(appUser, sp.name)
			}
			sp.appMember, sp.appJoined = true, now
			m = appMembership(now)
		} else {
			if sp.hasHumanLocked(in.user) {
				return nil, alreadyMember(in.user, sp.name)
			}
			h := member{user: in.user, role: in.role, created: now}
			sp.humans = append(sp.humans, h)
			m = h.membership()
		}
		return c.recordLocked(sp, evMembershipCreated, m.wire(sp.name))
	})
}

func alreadyMember(user, space string) *chatapi.Error {
	return chatapi.NewError(http.StatusConflict, fmt.Sprintf("The member %s already exists in %s.", user, space))
}

// deleteMember removes a membership and answers with it.
func (c *call) deleteMember() (any, *chatapi.Error) {
	return c.onMembership(func(sp *space, m membership, idx int) (any, *chatapi.Error) {
		if err := c.memberScopesOK(idx < 0); err != nil {
			return nil, err
		}
		if idx < 0 {
			sp.appMember = false
		} else {
			sp.humans = slices.Delete(sp.humans, idx, idx+1)
		}
		out := m.wire(sp.name)
		// Chat fills only the name and state of a deleted membership's event.
		c.e.addEventLocked(sp, evMembershipDeleted, map[string]any{"name": out["name"], "state": "NOT_A_MEMBER"})
		return out, nil
	})
}

// onMembership runs fn, under e.mu, with the membership the request names
// (see findMembershipLocked); a membership that does not exist is 404.
func (c *call) onMembership(fn func(sp *space, m membership, idx int) (any, *chatapi.Error)) (any, *chatapi.Error) {
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		m, idx, ok := sp.findMembershipLocked(c.vars["member"])
		if !ok {
			return nil, notFound()
		}
		return fn(sp, m, idx)
	})
}

// patchMember changes a human member's role (updateMask=role).
func (c *call) patchMember() (any, *chatapi.Error) {
	mask := strings.TrimSpace(c.q.Get("updateMask"))
	if mask == "" {
		return nil, invalidArgument("The update mask is required: set updateMask=role.")
	}
	for _, p := range strings.Split(mask, ",") {
		if p = strings.TrimSpace(p); p != "role" && p != "*" {
			return nil, invalidArgument(fmt.Sprintf("Invalid update mask path %q: a membership's only updatable field is role.", p))
		}
	}
	_, role, err := c.readBodyString("membership", membershipFields, "role")
	if err != nil {
		return nil, err
	}
	if !validRole(role) {
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'membership.role' (type.googleapis.com/google.chat.v1.Membership.MembershipRole), %q: want ROLE_MEMBER or ROLE_MANAGER", role))
	}
	return c.onMembership(func(sp *space, m membership, idx int) (any, *chatapi.Error) {
		if idx < 0 {
			return nil, invalidArgument(msgAppRole)
		}
		sp.humans[idx].role = role
		m.role = role
		return c.recordLocked(sp, evMembershipUpdated, m.wire(sp.name))
	})
}
