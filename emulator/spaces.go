package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chat-broker/chat-broker/chatapi"
)

var spaceNameRE = regexp.MustCompile(`^spaces/[A-Za-z0-9_-]+$`)

func validSpaceName(name string) bool { return spaceNameRE.MatchString(name) }

// seededHumans are the human members every space starts with, the same
// two people in every space, as in a small organization.
var seededHumans = []struct{ user, role string }{
	{"users/100000000000000000001", "ROLE_MANAGER"},
	{"users/100000000000000000002", "ROLE_MEMBER"},
}

// member is a human member of a space.
type member struct {
	user    string // "users/ID"
	role    string
	created time.Time
}

// space is a Chat space and everything in it.
type space struct {
	seq         int64
	name        string // "spaces/ID"
	displayName string
	spaceType   string
	created     time.Time
	appMember   bool
	appJoined   time.Time
	humans      []member
	extras      map[string]json.RawMessage // body fields echoed back as given
	// events are the space's spaceEvents, oldest first.
	events []*event

	msgs       []*message          // creation order
	byID       map[string]*message // by server-assigned id
	byClient   map[string]*message // by client-assigned id
	byRequest  map[string]*message // by requestKey
	threads    map[string]bool     // thread names
	threadKeys map[string]string   // threadKey → thread name
}

func (e *Emulator) addSpaceLocked(name string, appMember bool) *space {
	e.seq++
	now := e.now()
	sp := &space{
		seq:         e.seq,
		name:        name,
		displayName: strings.TrimPrefix(name, "spaces/"),
		spaceType:   "SPACE",
		created:     now,
		appMember:   appMember,
		appJoined:   now,
		byID:        map[string]*message{},
		byClient:    map[string]*message{},
		byRequest:   map[string]*message{},
		threads:     map[string]bool{},
		threadKeys:  map[string]string{},
	}
	for _, h := range seededHumans {
		sp.humans = append(sp.humans, member{user: h.user, role: h.role, created: now})
	}
	e.spaces[name] = sp
	return sp
}

func (e *Emulator) sortedSpacesLocked() []*space {
	out := make([]*space, 0, len(e.spaces))
	for _, sp := range e.spaces {
		out = append(out, sp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// inSpace runs fn, under e.mu, with the space the request names; a space
// that does not exist is 404.
func (c *call) inSpace(fn func(sp *space) (any, *chatapi.Error)) (any, *chatapi.Error) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	sp := c.e.spaces[c.m.Space(c.vars)]
	if sp == nil {
		return nil, notFound()
	}
	return fn(sp)
}

// recordLocked records an event in the space and answers with its
// payload, the resource as the call left it. Callers hold e.mu.
func (c *call) recordLocked(sp *space, typ string, payload map[string]any) (any, *chatapi.Error) {
	c.e.addEventLocked(sp, typ, payload)
	return payload, nil
}

func (sp *space) wire() map[string]any {
	out := echoed(sp.extras)
	legacy, threading := "ROOM", "THREADED_MESSAGES"
	if sp.spaceType != "SPACE" {
		threading = "UNTHREADED_MESSAGES"
	}
	if sp.spaceType == "DIRECT_MESSAGE" {
		legacy = "DM"
	}
	out["name"] = sp.name
	out["type"] = legacy
	out["spaceType"] = sp.spaceType
	if sp.displayName != "" {
		out["displayName"] = sp.displayName
	}
	out["spaceThreadingState"] = threading
	out["spaceHistoryState"] = "HISTORY_ON"
	out["createTime"] = timestamp(sp.created)
	out["spaceUri"] = "https://chat.google.com/room/" + strings.TrimPrefix(sp.name, "spaces/")
	out["membershipCount"] = map[string]int{"joinedDirectHumanUserCount": len(sp.humans)}
	return out
}

func (c *call) getSpace() (any, *chatapi.Error) {
	return c.inSpace(func(sp *space) (any, *chatapi.Error) { return sp.wire(), nil })
}

var spaceFilterFields = map[string]filterField{
	"space_type": {"space_type", kindString},
	"spaceType":  {"space_type", kindString},
}

// filterValue is a space's value of a spaces.list filter field.
func (sp *space) filterValue(string) (string, time.Time) { return sp.spaceType, time.Time{} }

// listSpaces lists the spaces the app is a member of; with delegation, the
// user sees every space.
func (c *call) listSpaces() (any, *chatapi.Error) {
	p, err := c.readList(spacesList)
	if err != nil {
		return nil, err
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	return page(p, c.e.sortedSpacesLocked(), func(sp *space) int64 { return sp.seq }, func(sp *space) bool {
		return (c.tok.subject != "" || sp.appMember) && p.filter.match(sp.filterValue)
	}, func(sp *space) any { return sp.wire() }), nil
}

var spaceFields = fieldSet("accessSettings", "adminInstalled", "createTime", "customer", "displayName",
	"externalUserAllowed", "importMode", "importModeExpireTime", "lastActiveTime", "membershipCount",
	"name", "permissionSettings", "predefinedPermissionSettings", "singleUserBotDm", "spaceDetails",
	"spaceHistoryState", "spaceThreadingState", "spaceType", "spaceUri", "threaded", "type")

// spaceEcho are the input fields of a Space kept as given and echoed back.
var spaceEcho = []string{"accessSettings", "externalUserAllowed", "permissionSettings", "spaceDetails"}

func fieldSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// createSpace creates a named space (spaceType SPACE). With app
// authentication Chat requires space.customer, and so does the emulator.
// The caller becomes a member; a repeated requestId returns the space it
// created.
func (c *call) createSpace() (any, *chatapi.Error) {
	fields, err := c.readBody("space", spaceFields)
	if err != nil {
		return nil, err
	}
	var displayName, spaceType, customer string
	for name, dst := range map[string]*string{"displayName": &displayName, "spaceType": &spaceType, "customer": &customer} {
		if *dst, err = stringField(fields, "space", name); err != nil {
			return nil, err
		}
	}
	switch spaceType {
	case "", "SPACE":
		spaceType = "SPACE"
	case "GROUP_CHAT", "DIRECT_MESSAGE":
		return nil, invalidArgument("chat-broker emulator: spaces.create makes only spaces of type SPACE (group chats and direct messages need import mode or spaces.setup)")
	default:
		return nil, invalidArgument("Invalid value at 'space.space_type' (type.googleapis.com/google.chat.v1.Space.SpaceType), \"" + spaceType + "\"")
	}
	if strings.TrimSpace(displayName) == "" {
		return nil, invalidArgument(msgNoDisplayName)
	}
	if c.tok.subject == "" && !strings.HasPrefix(customer, "customers/") {
		return nil, invalidArgument(`The space's customer is required when creating a space with app authentication; set space.customer to "customers/my_customer".`)
	}

	reqKey := c.requestKey(c.q.Get("requestId"))
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if sp := c.e.requestedSpaceLocked(reqKey); sp != nil {
		return sp.wire(), nil
	}
	if c.e.spaceNamedLocked(displayName) {
		return nil, chatapi.NewError(http.StatusConflict, msgSpaceNameTaken)
	}
	sp := c.e.newSpaceLocked(reqKey, c.tok.subject == "", displayName, spaceType, pick(fields, spaceEcho))
	if c.tok.subject != "" {
		sp.humans = append(sp.humans, member{user: c.identity(), role: "ROLE_MANAGER", created: sp.created})
	}
	return sp.wire(), nil
}

const (
	msgNoDisplayName  = "A space of type SPACE needs a display name (space.display_name)."
	msgSpaceNameTaken = "A space with the same display name already exists in this organization. Try a different display name."
)

// requestKey is the key of a requestId: per caller and method, so that
// only the same call repeated by the same caller matches; "" without one.
func (c *call) requestKey(requestID string) string {
	if requestID == "" {
		return ""
	}
	return c.identity() + "\x00" + c.m.ID + "\x00" + requestID
}

// requestedSpaceLocked returns the space created by the call with reqKey,
// or nil. Callers hold e.mu.
func (e *Emulator) requestedSpaceLocked(reqKey string) *space {
	if reqKey == "" {
		return nil
	}
	return e.spaces[e.spaceReqs[reqKey]]
}

// spaceNamedLocked reports whether a space of type SPACE has displayName,
// compared case-insensitively. Callers hold e.mu.
func (e *Emulator) spaceNamedLocked(displayName string) bool {
	for _, sp := range e.spaces {
		if sp.spaceType == "SPACE" && strings.EqualFold(sp.displayName, displayName) {
			return true
		}
	}
	return false
}

// newSpaceLocked adds a space with a new name, as spaces.create and
// spaces.setup do, and remembers it under reqKey. Callers hold e.mu.
func (e *Emulator) newSpaceLocked(reqKey string, appMember bool, displayName, spaceType string, extras map[string]json.RawMessage) *space {
	name := "spaces/AAQA" + randomID(7)
	for e.spaces[name] != nil {
		name = "spaces/AAQA" + randomID(7)
	}
	sp := e.addSpaceLocked(name, appMember)
	sp.displayName, sp.spaceType, sp.extras = displayName, spaceType, extras
	if reqKey != "" {
		e.spaceReqs[reqKey] = name
	}
	return sp
}

// membership is one row of a space's member list.
type membership struct {
	id, user, typ, role string
	created             time.Time
}

// membership is a human member's row.
func (h member) membership() membership {
	return membership{strings.TrimPrefix(h.user, "users/"), h.user, "HUMAN", h.role, h.created}
}

// appMembership is the calling app's row, as a member since joined.
func appMembership(joined time.Time) membership {
	return membership{"app", appUser, "BOT", "ROLE_MEMBER", joined}
}

func (sp *space) memberships() []membership {
	var out []membership
	for _, h := range sp.humans {
		out = append(out, h.membership())
	}
	if sp.appMember {
		out = append(out, appMembership(sp.appJoined))
	}
	return out
}

// filterValue is a membership's value of a members.list filter field.
func (m membership) filterValue(field string) (string, time.Time) {
	if field == "role" {
		return m.role, time.Time{}
	}
	return m.typ, time.Time{}
}

func (m membership) wire(space string) map[string]any {
	return map[string]any{
		"name":       space + "/members/" + m.id,
		"state":      "JOINED",
		"role":       m.role,
		"member":     map[string]string{"name": m.user, "type": m.typ},
		"createTime": timestamp(m.created),
	}
}

// getMember finds a membership by member id; "app" is the calling app's.
func (c *call) getMember() (any, *chatapi.Error) {
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		ms := sp.memberships()
		i := slices.IndexFunc(ms, func(m membership) bool { return m.id == c.vars["member"] })
		if i < 0 {
			return nil, notFound()
		}
		return ms[i].wire(sp.name), nil
	})
}

var memberFilterFields = map[string]filterField{
	"role":        {"role", kindString},
	"member.type": {"member.type", kindString},
}

func (c *call) listMembers() (any, *chatapi.Error) {
	p, err := c.readList(membersList)
	if err != nil {
		return nil, err
	}
	return c.inSpace(func(sp *space) (any, *chatapi.Error) {
		// Memberships have no sequence: a membership's position is its
		// place among those the filter keeps, from 1.
		type row struct {
			membership
			pos int64
		}
		var rows []row
		for _, m := range sp.memberships() {
			if p.filter.match(m.filterValue) {
				rows = append(rows, row{m, int64(len(rows)) + 1})
			}
		}
		return page(p, rows, func(r row) int64 { return r.pos }, nil, func(r row) any { return r.wire(sp.name) }), nil
	})
}

var setupFields = fieldSet("memberships", "requestId", "space")

// maxSetupMembers is how many people spaces.setup may invite besides the
// caller.
const maxSetupMembers = 49

// setupSpace serves spaces.setup (user authentication only): it creates a
// space, group chat or direct message with the calling user and the
// invited humans as members. A repeated requestId returns the space it
// created; a direct message that exists already is returned as it is.
func (c *call) setupSpace() (any, *chatapi.Error) {
	fields, requestID, err := c.readBodyString("request", setupFields, "requestId")
	if err != nil {
		return nil, err
	}
	raw, ok := fields["space"]
	if !ok {
		return nil, invalidArgument("The space is required: set space.spaceType (SPACE, GROUP_CHAT or DIRECT_MESSAGE).")
	}
	var spaceBody map[string]json.RawMessage
	if json.Unmarshal(raw, &spaceBody) != nil {
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'request.space' (type.googleapis.com/google.chat.v1.Space), %s", raw))
	}
	spaceIn := map[string]json.RawMessage{}
	for k, v := range spaceBody {
		name := camelCase(k)
		if !spaceFields[name] {
			return nil, invalidArgument(fmt.Sprintf("Invalid JSON payload received. Unknown name %q at 'request.space': Cannot find field.", k))
		}
		spaceIn[name] = v
	}
	var displayName, spaceType string
	if displayName, err = stringField(spaceIn, "request.space", "displayName"); err != nil {
		return nil, err
	}
	if spaceType, err = stringField(spaceIn, "request.space", "spaceType"); err != nil {
		return nil, err
	}
	botDM := false
	if v, ok := spaceIn["singleUserBotDm"]; ok && json.Unmarshal(v, &botDM) != nil {
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'request.space.single_user_bot_dm' (TYPE_BOOL), %s", v))
	}
	var invites []string
	if v, ok := fields["memberships"]; ok {
		var ms []struct {
			Member *struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"member"`
			GroupMember json.RawMessage `json:"groupMember"`
		}
		if json.Unmarshal(v, &ms) != nil {
			return nil, invalidArgument(fmt.Sprintf("Invalid value at 'request.memberships' (type.googleapis.com/google.chat.v1.Membership), %s", v))
		}
		if len(ms) > maxSetupMembers {
			return nil, invalidArgument(fmt.Sprintf("A space can be set up with at most %d memberships besides the caller; got %d.", maxSetupMembers, len(ms)))
		}
		for _, m := range ms {
			switch {
			case len(m.GroupMember) > 0 && string(m.GroupMember) != "null":
				return nil, chatapi.NewError(http.StatusNotImplemented, "chat-broker emulator: Google Group memberships are not implemented")
			case m.Member == nil || !userNameRE.MatchString(m.Member.Name):
				return nil, invalidArgument("Each membership needs member.name users/{user} (or users/{email}) and member.type HUMAN.")
			case m.Member.Type == "BOT" || m.Member.Name == appUser:
				return nil, invalidArgument("Chat apps can be added only when setting up a direct message with the calling app (space.singleUserBotDm).")
			case m.Member.Type != "" && m.Member.Type != "HUMAN":
				return nil, invalidArgument(fmt.Sprintf("Invalid value at 'request.memberships.member.type', %q", m.Member.Type))
			case strings.EqualFold(m.Member.Name, c.identity()) || slices.ContainsFunc(invites, func(u string) bool { return strings.EqualFold(u, m.Member.Name) }):
				// The caller is added anyway; duplicates add nothing.
			default:
				invites = append(invites, m.Member.Name)
			}
		}
	}
	if botDM && spaceType != "DIRECT_MESSAGE" {
		return nil, invalidArgument("space.singleUserBotDm is only for a space of type DIRECT_MESSAGE.")
	}
	switch spaceType {
	case "SPACE":
		if strings.TrimSpace(displayName) == "" {
			return nil, invalidArgument(msgNoDisplayName)
		}
	case "GROUP_CHAT":
		if displayName != "" || len(invites) < 2 {
			return nil, invalidArgument("A group chat has no display name and needs at least two memberships besides the caller.")
		}
	case "DIRECT_MESSAGE":
		if displayName != "" || (botDM && len(invites) != 0) || (!botDM && len(invites) != 1) {
			return nil, invalidArgument("A direct message has no display name and needs exactly one human membership, or none with space.singleUserBotDm.")
		}
	case "":
		return nil, invalidArgument("space.spaceType is required: SPACE, GROUP_CHAT or DIRECT_MESSAGE.")
	default:
		return nil, invalidArgument(fmt.Sprintf("Invalid value at 'request.space.space_type' (type.googleapis.com/google.chat.v1.Space.SpaceType), %q", spaceType))
	}

	reqKey := c.requestKey(requestID)
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if sp := c.e.requestedSpaceLocked(reqKey); sp != nil {
		return sp.wire(), nil
	}
	members := append([]string{c.identity()}, invites...)
	switch spaceType {
	case "SPACE":
		if c.e.spaceNamedLocked(displayName) {
			return nil, chatapi.NewError(http.StatusConflict, msgSpaceNameTaken)
		}
	case "DIRECT_MESSAGE":
		for _, sp := range c.e.sortedSpacesLocked() {
			if sp.spaceType == "DIRECT_MESSAGE" && sp.appMember == botDM && sp.sameHumansLocked(members) {
				return sp.wire(), nil
			}
		}
	}
	sp := c.e.newSpaceLocked(reqKey, botDM, displayName, spaceType, pick(spaceIn, append(slices.Clone(spaceEcho), "singleUserBotDm")))
	sp.humans = nil
	for i, u := range members {
		role := "ROLE_MEMBER"
		if i == 0 && spaceType == "SPACE" {
			role = "ROLE_MANAGER"
		}
		sp.humans = append(sp.humans, member{user: u, role: role, created: sp.created})
	}
	return sp.wire(), nil
}

// sameHumansLocked reports whether the space's human members are exactly
// users, ignoring order and case.
func (sp *space) sameHumansLocked(users []string) bool {
	if len(sp.humans) != len(users) {
		return false
	}
	for _, u := range users {
		if !sp.hasHumanLocked(u) {
			return false
		}
	}
	return true
}
