package chatapi

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi/discovery"
)

// QuotaClass names the per-project quota bucket that Chat charges a method
// to, as Chat's usage limits list them
// (https://developers.google.com/workspace/chat/limits). The limits
// themselves live with whoever enforces them; the class is a fact about
// the method.
type QuotaClass string

// Quota classes from Chat's published usage limits.
const (
	QuotaMessageWrites     QuotaClass = "message-writes"
	QuotaMessageReads      QuotaClass = "message-reads"
	QuotaMessageSearches   QuotaClass = "message-searches"
	QuotaMembershipWrites  QuotaClass = "membership-writes"
	QuotaMembershipReads   QuotaClass = "membership-reads"
	QuotaSpaceWrites       QuotaClass = "space-writes"
	QuotaSpaceReads        QuotaClass = "space-reads"
	QuotaSpaceEventReads   QuotaClass = "space-event-reads"
	QuotaAttachmentWrites  QuotaClass = "attachment-writes"
	QuotaAttachmentReads   QuotaClass = "attachment-reads"
	QuotaReactionWrites    QuotaClass = "reaction-writes"
	QuotaReactionReads     QuotaClass = "reaction-reads"
	QuotaCustomEmojiWrites QuotaClass = "custom-emoji-writes"
	QuotaCustomEmojiReads  QuotaClass = "custom-emoji-reads"
	QuotaReadStateWrites   QuotaClass = "read-state-writes"
	QuotaReadStateReads    QuotaClass = "read-state-reads"
	QuotaSettingsWrites    QuotaClass = "space-settings-writes"
	QuotaSettingsReads     QuotaClass = "space-settings-reads"
	QuotaSectionWrites     QuotaClass = "section-writes"
	QuotaSectionReads      QuotaClass = "section-reads"
	QuotaAvailabilityWrite QuotaClass = "availability-writes"
	QuotaAvailabilityReads QuotaClass = "availability-reads"
)

// Method is one Chat v1 REST method. Values in the catalog are shared and
// must not be modified.
type Method struct {
	// ID is the discovery method id without the "chat." prefix, for
	// example "spaces.messages.create". Policy files name methods by it.
	ID string
	// Verb is the HTTP method.
	Verb string
	// Paths are the request paths as gorilla/mux templates. A variable
	// without a pattern matches one path segment up to the next "/" or
	// ":" (Chat puts custom verbs after a colon inside a segment). Most
	// methods have one path; media.upload has three.
	Paths []string
	// RPC is the ChatService method name, used in ErrorInfo metadata.
	RPC string
	// AppScopes are the scopes Chat accepts for app authentication (the
	// service account as itself, no subject), narrowest first. Empty means
	// the method needs user authentication.
	AppScopes []Scope
	// UserScopes are the scopes Chat accepts for user authentication
	// (domain-wide delegation with a subject), narrowest first.
	UserScopes []Scope
	// AdminScopes are the scopes Chat accepts for user authentication with
	// useAdminAccess=true, narrowest first.
	AdminScopes []Scope
	// Quota is the per-project quota bucket the method is charged to.
	Quota QuotaClass
	// ReadOnly reports whether the method changes nothing. Reads may be
	// retried freely; they count against a space's read quota.
	ReadOnly bool
	// RequestIDParam names the query parameter Chat deduplicates a write
	// on ("requestId"), or is empty when the method has none.
	RequestIDParam string
	// MaxBody is the largest request body the method may carry, in bytes.
	MaxBody int64
	// Query are the method's own query parameters, as Google's discovery
	// document lists them, sorted ("pageSize", "requestId"); system
	// parameters such as alt and fields are not listed.
	Query []string
}

// Space returns the space a request addresses, as "spaces/ID", from the
// route variables of a match, or "" when the method names no space.
func (m *Method) Space(vars map[string]string) string {
	if id, ok := vars["space"]; ok && id != "" {
		return "spaces/" + id
	}
	return ""
}

// NamesSpace reports whether every path of the method names a space.
func (m *Method) NamesSpace() bool {
	for _, p := range m.Paths {
		if !strings.Contains(p, "{space}") {
			return false
		}
	}
	return true
}

// UserOnly reports whether the method has no app-authentication path.
func (m *Method) UserOnly() bool { return len(m.AppScopes) == 0 }

// Body sizes. A message's text may be at most 32,000 bytes; cards and
// JSON escaping add to it, so writes get room to spare. Media is streamed
// and capped at Chat's 200 MB upload limit.
const (
	maxJSONBody  = 1 << 20
	maxNoBody    = 0
	MaxMediaBody = 200 << 20
)

// overlay is what the discovery document does not say about a method:
// its ChatService RPC name (for ErrorInfo metadata), the quota bucket Chat
// charges it to, whether a POST changes nothing, and whether its last
// path segment may hold colons. Every method of the document has an
// entry, and every entry a method: a test holds the two together.
type overlay struct {
	rpc    string
	quota  QuotaClass
	read   bool // a POST that changes nothing
	colons bool // the name's last segment may hold ":" (no custom verb follows it)
}

var overlays = map[string]overlay{
	"spaces.messages.create":          {rpc: "CreateMessage", quota: QuotaMessageWrites},
	"spaces.messages.list":            {rpc: "ListMessages", quota: QuotaMessageReads},
	"spaces.messages.get":             {rpc: "GetMessage", quota: QuotaMessageReads},
	"spaces.messages.patch":           {rpc: "UpdateMessage", quota: QuotaMessageWrites},
	"spaces.messages.update":          {rpc: "UpdateMessage", quota: QuotaMessageWrites},
	"spaces.messages.delete":          {rpc: "DeleteMessage", quota: QuotaMessageWrites},
	"spaces.messages.replaceCards":    {rpc: "ReplaceMessageCards", quota: QuotaMessageWrites},
	"spaces.messages.search":          {rpc: "SearchMessages", quota: QuotaMessageSearches, read: true},
	"spaces.messages.attachments.get": {rpc: "GetAttachment", quota: QuotaAttachmentReads},
	// Chat's published limits name no bucket for pins; they are charged
	// as message reads and writes here.
	"spaces.messagePins.create":                   {rpc: "CreateMessagePin", quota: QuotaMessageWrites},
	"spaces.messagePins.delete":                   {rpc: "DeleteMessagePin", quota: QuotaMessageWrites},
	"spaces.messagePins.list":                     {rpc: "ListMessagePins", quota: QuotaMessageReads},
	"spaces.messages.reactions.create":            {rpc: "CreateReaction", quota: QuotaReactionWrites},
	"spaces.messages.reactions.list":              {rpc: "ListReactions", quota: QuotaReactionReads},
	"spaces.messages.reactions.delete":            {rpc: "DeleteReaction", quota: QuotaReactionWrites},
	"media.upload":                                {rpc: "UploadAttachment", quota: QuotaAttachmentWrites},
	"media.download":                              {rpc: "DownloadMedia", quota: QuotaAttachmentReads},
	"spaces.list":                                 {rpc: "ListSpaces", quota: QuotaSpaceReads},
	"spaces.get":                                  {rpc: "GetSpace", quota: QuotaSpaceReads},
	"spaces.create":                               {rpc: "CreateSpace", quota: QuotaSpaceWrites},
	"spaces.setup":                                {rpc: "SetUpSpace", quota: QuotaSpaceWrites},
	"spaces.patch":                                {rpc: "UpdateSpace", quota: QuotaSpaceWrites},
	"spaces.delete":                               {rpc: "DeleteSpace", quota: QuotaSpaceWrites},
	"spaces.search":                               {rpc: "SearchSpaces", quota: QuotaSpaceReads},
	"spaces.findDirectMessage":                    {rpc: "FindDirectMessage", quota: QuotaSpaceReads},
	"spaces.findGroupChats":                       {rpc: "FindGroupChats", quota: QuotaSpaceReads},
	"spaces.completeImport":                       {rpc: "CompleteImportSpace", quota: QuotaSpaceWrites},
	"spaces.members.create":                       {rpc: "CreateMembership", quota: QuotaMembershipWrites},
	"spaces.members.list":                         {rpc: "ListMemberships", quota: QuotaMembershipReads},
	"spaces.members.get":                          {rpc: "GetMembership", quota: QuotaMembershipReads},
	"spaces.members.patch":                        {rpc: "UpdateMembership", quota: QuotaMembershipWrites},
	"spaces.members.delete":                       {rpc: "DeleteMembership", quota: QuotaMembershipWrites},
	"spaces.spaceEvents.get":                      {rpc: "GetSpaceEvent", quota: QuotaSpaceEventReads},
	"spaces.spaceEvents.list":                     {rpc: "ListSpaceEvents", quota: QuotaSpaceEventReads},
	"users.spaces.getSpaceReadState":              {rpc: "GetSpaceReadState", quota: QuotaReadStateReads},
	"users.spaces.updateSpaceReadState":           {rpc: "UpdateSpaceReadState", quota: QuotaReadStateWrites},
	"users.spaces.threads.getThreadReadState":     {rpc: "GetThreadReadState", quota: QuotaReadStateReads},
	"users.spaces.spaceNotificationSetting.get":   {rpc: "GetSpaceNotificationSetting", quota: QuotaSettingsReads},
	"users.spaces.spaceNotificationSetting.patch": {rpc: "UpdateSpaceNotificationSetting", quota: QuotaSettingsWrites},
	// Custom emoji names have an alias form "customEmojis/:name:".
	"customEmojis.create":                   {rpc: "CreateCustomEmoji", quota: QuotaCustomEmojiWrites},
	"customEmojis.get":                      {rpc: "GetCustomEmoji", quota: QuotaCustomEmojiReads, colons: true},
	"customEmojis.list":                     {rpc: "ListCustomEmojis", quota: QuotaCustomEmojiReads},
	"customEmojis.delete":                   {rpc: "DeleteCustomEmoji", quota: QuotaCustomEmojiWrites, colons: true},
	"users.sections.create":                 {rpc: "CreateSection", quota: QuotaSectionWrites},
	"users.sections.list":                   {rpc: "ListSections", quota: QuotaSectionReads},
	"users.sections.patch":                  {rpc: "UpdateSection", quota: QuotaSectionWrites},
	"users.sections.delete":                 {rpc: "DeleteSection", quota: QuotaSectionWrites},
	"users.sections.position":               {rpc: "PositionSection", quota: QuotaSectionWrites},
	"users.sections.items.list":             {rpc: "ListSectionItems", quota: QuotaSectionReads},
	"users.sections.items.move":             {rpc: "MoveSectionItem", quota: QuotaSectionWrites},
	"users.availability.get":                {rpc: "GetUserAvailability", quota: QuotaAvailabilityReads},
	"users.availability.patch":              {rpc: "UpdateUserAvailability", quota: QuotaAvailabilityWrite},
	"users.availability.markAsActive":       {rpc: "MarkAsActive", quota: QuotaAvailabilityWrite},
	"users.availability.markAsAway":         {rpc: "MarkAsAway", quota: QuotaAvailabilityWrite},
	"users.availability.markAsDoNotDisturb": {rpc: "MarkAsDoNotDisturb", quota: QuotaAvailabilityWrite},
}

// The broker's order of preference among the scopes a method accepts,
// one list for each kind of authentication, narrowest first: the broker
// mints the first one a caller is granted. The document says which
// scopes a method accepts but neither their kind nor their order. Every
// scope of the document is in exactly one list (a test checks), so a new
// scope from Google fails the tests until it is placed.
var (
	// App authentication: chat.bot needs no approval; of the chat.app.*
	// scopes, the ones limited to what the app belongs to come first.
	appPreference = []Scope{
		ScopeBot,
		ScopeAppSpacesCreate, ScopeAppMessagesReadonly, ScopeAppMembershipsReadonly, ScopeAppSpacesReadonly,
		ScopeAppSpaces, ScopeAppMemberships, ScopeAppDelete,
		ScopeAppAllMessagesReadonly, ScopeAppAllMembershipsReadonly, ScopeAppAllSpacesReadonly,
	}
	// User authentication: create-only, then read-only, then read-write,
	// then chat.import, which works only in spaces being imported.
	// chat.memberships.app only lets a user add or remove apps, so the
	// general chat.memberships comes before it.
	userPreference = []Scope{
		ScopeMessagesCreate, ScopeMessagesReactionsCreate, ScopeSpacesCreate,
		ScopeMessagesReactionsReadonly, ScopeSpacesPinsReadonly, ScopeMessagesReadonly, ScopeMembershipsReadonly,
		ScopeSpacesReadonly, ScopeCustomEmojisReadonly, ScopeUsersReadstateReadonly,
		ScopeUsersSectionsReadonly, ScopeUsersAvailabilityReadonly,
		ScopeMessagesReactions, ScopeSpacesPins, ScopeMessages, ScopeMemberships, ScopeMembershipsApp,
		ScopeSpaces, ScopeDelete, ScopeCustomEmojis, ScopeUsersReadstate, ScopeUsersSpacesettings,
		ScopeUsersSections, ScopeUsersAvailability,
		ScopeImport,
	}
	// Admin access (a user with useAdminAccess=true): read-only first.
	adminPreference = []Scope{
		ScopeAdminSpacesReadonly, ScopeAdminMembershipsReadonly,
		ScopeAdminSpaces, ScopeAdminMemberships, ScopeAdminDelete,
	}
)

// catalog is the whole Chat v1 REST surface, built from the discovery
// document and the overlay.
var catalog, byID = func() ([]*Method, map[string]*Method) {
	ms, err := build(discovery.Methods(), overlays)
	if err != nil {
		panic("chatapi: " + err.Error())
	}
	by := make(map[string]*Method, len(ms))
	for _, m := range ms {
		by[m.ID] = m
	}
	return ms, by
}()

// build makes the catalog from the document's methods and the overlay,
// and fails where the two disagree.
func build(doc []*discovery.Method, over map[string]overlay) ([]*Method, error) {
	rank := map[Scope]int{}
	for _, list := range [][]Scope{appPreference, userPreference, adminPreference} {
		for i, s := range list {
			rank[s] = i
		}
	}
	var out []*Method
	for _, d := range doc {
		o, ok := over[d.ID]
		if !ok {
			return nil, fmt.Errorf("method %s of the discovery document has no overlay entry: add its RPC name and quota class to overlays", d.ID)
		}
		m := &Method{ID: d.ID, Verb: d.Verb, RPC: o.rpc, Quota: o.quota, ReadOnly: d.Verb == http.MethodGet || o.read, Query: slices.Clone(d.Query)}
		tmpl, err := template(d, o.colons)
		if err != nil {
			return nil, err
		}
		m.Paths = []string{tmpl}
		for _, p := range d.UploadPaths {
			m.Paths = append(m.Paths, strings.Replace(p, "/"+d.FlatPath, tmpl, 1))
		}
		for _, name := range d.Scopes {
			s := Scope(name)
			if _, ok := rank[s]; !ok {
				return nil, fmt.Errorf("method %s accepts scope %s, which no preference list places: add it to appPreference, userPreference or adminPreference", d.ID, s)
			}
			switch {
			case s == ScopeBot || s.IsApp():
				m.AppScopes = append(m.AppScopes, s)
			case s.IsAdmin():
				if !d.AcceptsQuery("useAdminAccess") {
					return nil, fmt.Errorf("method %s accepts admin scope %s but has no useAdminAccess parameter", d.ID, s)
				}
				m.AdminScopes = append(m.AdminScopes, s)
			default:
				m.UserScopes = append(m.UserScopes, s)
			}
		}
		for _, list := range [][]Scope{m.AppScopes, m.UserScopes, m.AdminScopes} {
			slices.SortStableFunc(list, func(a, b Scope) int { return rank[a] - rank[b] })
		}
		if d.AcceptsQuery("requestId") {
			m.RequestIDParam = "requestId"
		}
		switch {
		case d.MaxUpload > 0:
			m.MaxBody = d.MaxUpload
		case d.Verb == http.MethodGet || d.Verb == http.MethodDelete:
			m.MaxBody = maxNoBody
		default:
			m.MaxBody = maxJSONBody
		}
		out = append(out, m)
	}
	for id := range over {
		if !slices.ContainsFunc(doc, func(d *discovery.Method) bool { return d.ID == id }) {
			return nil, fmt.Errorf("overlay entry %s names no method of the discovery document: remove it", id)
		}
	}
	return out, nil
}

// template turns the document's flat path ("v1/spaces/{spacesId}") into
// a route template ("/v1/spaces/{space}"): each variable named for its
// collection in the singular. A variable matches one segment up to the
// next "/" or ":" (Chat puts custom verbs after a colon), or with colons
// where the overlay says so; a name the document lets hold anything
// ("^.*$", media resource names) is {resource:.+}.
func template(d *discovery.Method, colons bool) (string, error) {
	var b strings.Builder
	rest := d.FlatPath
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("method %s: unbalanced braces in %q", d.ID, d.FlatPath)
		}
		b.WriteString(rest[:i])
		name := strings.TrimSuffix(strings.TrimSuffix(rest[i+1:i+j], "Id"), "s")
		rest = rest[i+j+1:]
		last := !strings.Contains(rest, "{")
		switch {
		case last && d.NamePattern == "^.*$":
			b.WriteString("{resource:.+}")
		case last && colons:
			b.WriteString("{" + name + ":[^/]+}")
		default:
			b.WriteString("{" + name + "}")
		}
	}
	return "/" + b.String(), nil
}

// Methods returns the whole catalog, sorted by ID. The *Method values are
// shared; the slice is the caller's.
func Methods() []*Method {
	out := append([]*Method(nil), catalog...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Lookup returns the method with the given ID ("spaces.messages.create";
// a leading "chat." is accepted too).
func Lookup(id string) (*Method, bool) {
	m, ok := byID[strings.TrimPrefix(id, "chat.")]
	return m, ok
}
