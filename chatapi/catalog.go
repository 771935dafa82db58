package chatapi

import (
	"sort"
	"strings"
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

// Short forms for the catalog table below.
type scopes = []Scope

const (
	get   = "GET"
	post  = "POST"
	patch = "PATCH"
	put   = "PUT"
	del   = "DELETE"
)

// catalog is the whole Chat v1 REST surface, as Google's reference and
// discovery document list it
// (https://developers.google.com/workspace/chat/api/reference/rest). Scope
// lists are ordered narrowest first: the broker mints the first one the
// caller is granted.
var catalog = []*Method{
	// Messages.
	{ID: "spaces.messages.create", Verb: post, Paths: []string{"/v1/spaces/{space}/messages"}, RPC: "CreateMessage",
		AppScopes:  scopes{ScopeBot},
		UserScopes: scopes{ScopeMessagesCreate, ScopeMessages, ScopeImport},
		Quota:      QuotaMessageWrites, RequestIDParam: "requestId"},
	{ID: "spaces.messages.list", Verb: get, Paths: []string{"/v1/spaces/{space}/messages"}, RPC: "ListMessages",
		AppScopes:  scopes{ScopeAppMessagesReadonly},
		UserScopes: scopes{ScopeMessagesReadonly, ScopeMessages, ScopeImport},
		Quota:      QuotaMessageReads},
	{ID: "spaces.messages.get", Verb: get, Paths: []string{"/v1/spaces/{space}/messages/{message}"}, RPC: "GetMessage",
		AppScopes:  scopes{ScopeBot, ScopeAppMessagesReadonly},
		UserScopes: scopes{ScopeMessagesReadonly, ScopeMessages},
		Quota:      QuotaMessageReads},
	{ID: "spaces.messages.patch", Verb: patch, Paths: []string{"/v1/spaces/{space}/messages/{message}"}, RPC: "UpdateMessage",
		AppScopes:  scopes{ScopeBot},
		UserScopes: scopes{ScopeMessages, ScopeImport},
		Quota:      QuotaMessageWrites},
	{ID: "spaces.messages.update", Verb: put, Paths: []string{"/v1/spaces/{space}/messages/{message}"}, RPC: "UpdateMessage",
		AppScopes:  scopes{ScopeBot},
		UserScopes: scopes{ScopeMessages, ScopeImport},
		Quota:      QuotaMessageWrites},
	{ID: "spaces.messages.delete", Verb: del, Paths: []string{"/v1/spaces/{space}/messages/{message}"}, RPC: "DeleteMessage",
		AppScopes:  scopes{ScopeBot},
		UserScopes: scopes{ScopeMessages, ScopeImport},
		Quota:      QuotaMessageWrites},
	{ID: "spaces.messages.search", Verb: post, Paths: []string{"/v1/spaces/{space}/messages:search"}, RPC: "SearchMessages",
		UserScopes: scopes{ScopeMessagesReadonly, ScopeMessages},
		Quota:      QuotaMessageSearches, ReadOnly: true},
	{ID: "spaces.messages.attachments.get", Verb: get, Paths: []string{"/v1/spaces/{space}/messages/{message}/attachments/{attachment}"}, RPC: "GetAttachment",
		AppScopes: scopes{ScopeBot},
		Quota:     QuotaAttachmentReads},

	// Reactions (user authentication only).
	{ID: "spaces.messages.reactions.create", Verb: post, Paths: []string{"/v1/spaces/{space}/messages/{message}/reactions"}, RPC: "CreateReaction",
		UserScopes: scopes{ScopeMessagesReactionsCreate, ScopeMessagesReactions, ScopeMessages, ScopeImport},
		Quota:      QuotaReactionWrites},
	{ID: "spaces.messages.reactions.list", Verb: get, Paths: []string{"/v1/spaces/{space}/messages/{message}/reactions"}, RPC: "ListReactions",
		UserScopes: scopes{ScopeMessagesReactionsReadonly, ScopeMessagesReadonly, ScopeMessagesReactions, ScopeMessages},
		Quota:      QuotaReactionReads},
	{ID: "spaces.messages.reactions.delete", Verb: del, Paths: []string{"/v1/spaces/{space}/messages/{message}/reactions/{reaction}"}, RPC: "DeleteReaction",
		UserScopes: scopes{ScopeMessagesReactions, ScopeMessages, ScopeImport},
		Quota:      QuotaReactionWrites},

	// Media.
	{ID: "media.upload", Verb: post, Paths: []string{
		"/v1/spaces/{space}/attachments:upload",
		"/upload/v1/spaces/{space}/attachments:upload",
		"/resumable/upload/v1/spaces/{space}/attachments:upload",
	}, RPC: "UploadAttachment",
		UserScopes: scopes{ScopeMessagesCreate, ScopeMessages, ScopeImport},
		Quota:      QuotaAttachmentWrites, MaxBody: MaxMediaBody},
	// The resource name is opaque and may hold slashes (discovery pattern
	// "^.*$"), so media.download names no space.
	{ID: "media.download", Verb: get, Paths: []string{"/v1/media/{resource:.+}"}, RPC: "DownloadMedia",
		AppScopes:  scopes{ScopeBot},
		UserScopes: scopes{ScopeMessagesReadonly, ScopeMessages},
		Quota:      QuotaAttachmentReads},

	// Spaces.
	{ID: "spaces.list", Verb: get, Paths: []string{"/v1/spaces"}, RPC: "ListSpaces",
		AppScopes:  scopes{ScopeBot},
		UserScopes: scopes{ScopeSpacesReadonly, ScopeSpaces},
		Quota:      QuotaSpaceReads},
	{ID: "spaces.get", Verb: get, Paths: []string{"/v1/spaces/{space}"}, RPC: "GetSpace",
		AppScopes:   scopes{ScopeBot, ScopeAppSpaces},
		UserScopes:  scopes{ScopeSpacesReadonly, ScopeSpaces},
		AdminScopes: scopes{ScopeAdminSpacesReadonly, ScopeAdminSpaces},
		Quota:       QuotaSpaceReads},
	{ID: "spaces.create", Verb: post, Paths: []string{"/v1/spaces"}, RPC: "CreateSpace",
		AppScopes:  scopes{ScopeAppSpacesCreate, ScopeAppSpaces},
		UserScopes: scopes{ScopeSpacesCreate, ScopeSpaces, ScopeImport},
		Quota:      QuotaSpaceWrites, RequestIDParam: "requestId"},
	{ID: "spaces.setup", Verb: post, Paths: []string{"/v1/spaces:setup"}, RPC: "SetUpSpace",
		UserScopes: scopes{ScopeSpacesCreate, ScopeSpaces},
		Quota:      QuotaSpaceWrites},
	{ID: "spaces.patch", Verb: patch, Paths: []string{"/v1/spaces/{space}"}, RPC: "UpdateSpace",
		AppScopes:   scopes{ScopeAppSpaces},
		UserScopes:  scopes{ScopeSpaces, ScopeImport},
		AdminScopes: scopes{ScopeAdminSpaces},
		Quota:       QuotaSpaceWrites},
	{ID: "spaces.delete", Verb: del, Paths: []string{"/v1/spaces/{space}"}, RPC: "DeleteSpace",
		AppScopes:   scopes{ScopeAppDelete},
		UserScopes:  scopes{ScopeDelete, ScopeImport},
		AdminScopes: scopes{ScopeAdminDelete},
		Quota:       QuotaSpaceWrites},
	{ID: "spaces.search", Verb: get, Paths: []string{"/v1/spaces:search"}, RPC: "SearchSpaces",
		UserScopes:  scopes{ScopeSpacesReadonly, ScopeSpaces},
		AdminScopes: scopes{ScopeAdminSpacesReadonly, ScopeAdminSpaces},
		Quota:       QuotaSpaceReads},
	{ID: "spaces.findDirectMessage", Verb: get, Paths: []string{"/v1/spaces:findDirectMessage"}, RPC: "FindDirectMessage",
		AppScopes:  scopes{ScopeBot},
		UserScopes: scopes{ScopeSpacesReadonly, ScopeSpaces},
		Quota:      QuotaSpaceReads},
	{ID: "spaces.findGroupChats", Verb: get, Paths: []string{"/v1/spaces:findGroupChats"}, RPC: "FindGroupChats",
		UserScopes: scopes{ScopeMembershipsReadonly, ScopeMemberships},
		Quota:      QuotaSpaceReads},
	{ID: "spaces.completeImport", Verb: post, Paths: []string{"/v1/spaces/{space}:completeImport"}, RPC: "CompleteImportSpace",
		UserScopes: scopes{ScopeImport},
		Quota:      QuotaSpaceWrites},

	// Members. chat.memberships.app only lets the app add or remove
	// itself, so the general scope comes first for writes.
	{ID: "spaces.members.create", Verb: post, Paths: []string{"/v1/spaces/{space}/members"}, RPC: "CreateMembership",
		AppScopes:   scopes{ScopeAppMemberships},
		UserScopes:  scopes{ScopeMemberships, ScopeMembershipsApp, ScopeImport},
		AdminScopes: scopes{ScopeAdminMemberships},
		Quota:       QuotaMembershipWrites},
	{ID: "spaces.members.list", Verb: get, Paths: []string{"/v1/spaces/{space}/members"}, RPC: "ListMemberships",
		AppScopes:   scopes{ScopeBot, ScopeAppMemberships},
		UserScopes:  scopes{ScopeMembershipsReadonly, ScopeMemberships, ScopeImport},
		AdminScopes: scopes{ScopeAdminMembershipsReadonly, ScopeAdminMemberships},
		Quota:       QuotaMembershipReads},
	{ID: "spaces.members.get", Verb: get, Paths: []string{"/v1/spaces/{space}/members/{member}"}, RPC: "GetMembership",
		AppScopes:   scopes{ScopeBot, ScopeAppMemberships},
		UserScopes:  scopes{ScopeMembershipsReadonly, ScopeMemberships},
		AdminScopes: scopes{ScopeAdminMembershipsReadonly, ScopeAdminMemberships},
		Quota:       QuotaMembershipReads},
	{ID: "spaces.members.patch", Verb: patch, Paths: []string{"/v1/spaces/{space}/members/{member}"}, RPC: "UpdateMembership",
		AppScopes:   scopes{ScopeAppMemberships},
		UserScopes:  scopes{ScopeMemberships, ScopeImport},
		AdminScopes: scopes{ScopeAdminMemberships},
		Quota:       QuotaMembershipWrites},
	{ID: "spaces.members.delete", Verb: del, Paths: []string{"/v1/spaces/{space}/members/{member}"}, RPC: "DeleteMembership",
		AppScopes:   scopes{ScopeAppMemberships},
		UserScopes:  scopes{ScopeMemberships, ScopeMembershipsApp, ScopeImport},
		AdminScopes: scopes{ScopeAdminMemberships},
		Quota:       QuotaMembershipWrites},

	// Space events. Which scope Chat needs depends on the event types
	// asked for; the narrowest granted one is tried.
	{ID: "spaces.spaceEvents.get", Verb: get, Paths: []string{"/v1/spaces/{space}/spaceEvents/{spaceEvent}"}, RPC: "GetSpaceEvent",
		AppScopes: spaceEventAppScopes, UserScopes: spaceEventUserScopes, Quota: QuotaSpaceEventReads},
	{ID: "spaces.spaceEvents.list", Verb: get, Paths: []string{"/v1/spaces/{space}/spaceEvents"}, RPC: "ListSpaceEvents",
		AppScopes: spaceEventAppScopes, UserScopes: spaceEventUserScopes, Quota: QuotaSpaceEventReads},

	// A user's own state (user authentication only).
	{ID: "users.spaces.getSpaceReadState", Verb: get, Paths: []string{"/v1/users/{user}/spaces/{space}/spaceReadState"}, RPC: "GetSpaceReadState",
		UserScopes: scopes{ScopeUsersReadstateReadonly, ScopeUsersReadstate}, Quota: QuotaReadStateReads},
	{ID: "users.spaces.updateSpaceReadState", Verb: patch, Paths: []string{"/v1/users/{user}/spaces/{space}/spaceReadState"}, RPC: "UpdateSpaceReadState",
		UserScopes: scopes{ScopeUsersReadstate}, Quota: QuotaReadStateWrites},
	{ID: "users.spaces.threads.getThreadReadState", Verb: get, Paths: []string{"/v1/users/{user}/spaces/{space}/threads/{thread}/threadReadState"}, RPC: "GetThreadReadState",
		UserScopes: scopes{ScopeUsersReadstateReadonly, ScopeUsersReadstate}, Quota: QuotaReadStateReads},
	{ID: "users.spaces.spaceNotificationSetting.get", Verb: get, Paths: []string{"/v1/users/{user}/spaces/{space}/spaceNotificationSetting"}, RPC: "GetSpaceNotificationSetting",
		UserScopes: scopes{ScopeUsersSpacesettings}, Quota: QuotaSettingsReads},
	{ID: "users.spaces.spaceNotificationSetting.patch", Verb: patch, Paths: []string{"/v1/users/{user}/spaces/{space}/spaceNotificationSetting"}, RPC: "UpdateSpaceNotificationSetting",
		UserScopes: scopes{ScopeUsersSpacesettings}, Quota: QuotaSettingsWrites},

	// Custom emoji (user authentication only). Their names have an alias
	// form "customEmojis/:name:", so the segment may hold colons.
	{ID: "customEmojis.create", Verb: post, Paths: []string{"/v1/customEmojis"}, RPC: "CreateCustomEmoji",
		UserScopes: scopes{ScopeCustomEmojis}, Quota: QuotaCustomEmojiWrites},
	{ID: "customEmojis.get", Verb: get, Paths: []string{"/v1/customEmojis/{customEmoji:[^/]+}"}, RPC: "GetCustomEmoji",
		UserScopes: scopes{ScopeCustomEmojisReadonly, ScopeCustomEmojis}, Quota: QuotaCustomEmojiReads},
	{ID: "customEmojis.list", Verb: get, Paths: []string{"/v1/customEmojis"}, RPC: "ListCustomEmojis",
		UserScopes: scopes{ScopeCustomEmojisReadonly, ScopeCustomEmojis}, Quota: QuotaCustomEmojiReads},
	{ID: "customEmojis.delete", Verb: del, Paths: []string{"/v1/customEmojis/{customEmoji:[^/]+}"}, RPC: "DeleteCustomEmoji",
		UserScopes: scopes{ScopeCustomEmojis}, Quota: QuotaCustomEmojiWrites},

	// Sidebar sections (user authentication only; proto-only methods).
	{ID: "users.sections.create", Verb: post, Paths: []string{"/v1/users/{user}/sections"}, RPC: "CreateSection",
		UserScopes: scopes{ScopeUsersSections}, Quota: QuotaSectionWrites},
	{ID: "users.sections.list", Verb: get, Paths: []string{"/v1/users/{user}/sections"}, RPC: "ListSections",
		UserScopes: scopes{ScopeUsersSectionsReadonly, ScopeUsersSections}, Quota: QuotaSectionReads},
	{ID: "users.sections.patch", Verb: patch, Paths: []string{"/v1/users/{user}/sections/{section}"}, RPC: "UpdateSection",
		UserScopes: scopes{ScopeUsersSections}, Quota: QuotaSectionWrites},
	{ID: "users.sections.delete", Verb: del, Paths: []string{"/v1/users/{user}/sections/{section}"}, RPC: "DeleteSection",
		UserScopes: scopes{ScopeUsersSections}, Quota: QuotaSectionWrites},
	{ID: "users.sections.position", Verb: post, Paths: []string{"/v1/users/{user}/sections/{section}:position"}, RPC: "PositionSection",
		UserScopes: scopes{ScopeUsersSections}, Quota: QuotaSectionWrites},
	{ID: "users.sections.items.list", Verb: get, Paths: []string{"/v1/users/{user}/sections/{section}/items"}, RPC: "ListSectionItems",
		UserScopes: scopes{ScopeUsersSectionsReadonly, ScopeUsersSections}, Quota: QuotaSectionReads},
	{ID: "users.sections.items.move", Verb: post, Paths: []string{"/v1/users/{user}/sections/{section}/items/{item}:move"}, RPC: "MoveSectionItem",
		UserScopes: scopes{ScopeUsersSections}, Quota: QuotaSectionWrites},

	// Availability (user authentication only; proto-only methods).
	{ID: "users.availability.get", Verb: get, Paths: []string{"/v1/users/{user}/availability"}, RPC: "GetUserAvailability",
		UserScopes: scopes{ScopeUsersAvailabilityReadonly, ScopeUsersAvailability}, Quota: QuotaAvailabilityReads},
	{ID: "users.availability.patch", Verb: patch, Paths: []string{"/v1/users/{user}/availability"}, RPC: "UpdateUserAvailability",
		UserScopes: scopes{ScopeUsersAvailability}, Quota: QuotaAvailabilityWrite},
	{ID: "users.availability.markAsActive", Verb: post, Paths: []string{"/v1/users/{user}/availability:markAsActive"}, RPC: "MarkAsActive",
		UserScopes: scopes{ScopeUsersAvailability}, Quota: QuotaAvailabilityWrite},
	{ID: "users.availability.markAsAway", Verb: post, Paths: []string{"/v1/users/{user}/availability:markAsAway"}, RPC: "MarkAsAway",
		UserScopes: scopes{ScopeUsersAvailability}, Quota: QuotaAvailabilityWrite},
	{ID: "users.availability.markAsDoNotDisturb", Verb: post, Paths: []string{"/v1/users/{user}/availability:markAsDoNotDisturb"}, RPC: "MarkAsDoNotDisturb",
		UserScopes: scopes{ScopeUsersAvailability}, Quota: QuotaAvailabilityWrite},
}

var spaceEventAppScopes = scopes{
	ScopeAppSpacesReadonly, ScopeAppMembershipsReadonly, ScopeAppMessagesReadonly,
	ScopeAppSpaces, ScopeAppMemberships,
	ScopeAppAllSpacesReadonly, ScopeAppAllMembershipsReadonly, ScopeAppAllMessagesReadonly,
}

var spaceEventUserScopes = scopes{
	ScopeSpacesReadonly, ScopeMembershipsReadonly, ScopeMessagesReadonly, ScopeMessagesReactionsReadonly,
	ScopeSpaces, ScopeMemberships, ScopeMessages, ScopeMessagesReactions,
}

var byID = func() map[string]*Method {
	m := make(map[string]*Method, len(catalog))
	for _, meth := range catalog {
		if meth.Verb == get {
			meth.ReadOnly = true
		}
		if meth.MaxBody == 0 {
			meth.MaxBody = maxJSONBody
			if meth.Verb == get || meth.Verb == del {
				meth.MaxBody = maxNoBody
			}
		}
		m[meth.ID] = meth
	}
	return m
}()

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
