package chatapi

import (
	"sort"
	"strings"

	"github.com/chat-broker/chat-broker/chatapi/discovery"
)

// ScopePrefix is the URL prefix of every Google OAuth scope. Policy files
// and the catalog use the short form ("chat.bot"); tokens carry the URL.
const ScopePrefix = "https://www.googleapis.com/auth/"

// Scope is a Chat OAuth scope in short form, for example "chat.bot".
type Scope string

// URL returns the full scope URL that goes into a token request.
func (s Scope) URL() string { return ScopePrefix + string(s) }

// IsApp reports whether s is a chat.app.* scope, which a Workspace
// administrator must approve once before Chat honours it.
func (s Scope) IsApp() bool { return strings.HasPrefix(string(s), "chat.app.") }

// IsAdmin reports whether s is a chat.admin.* scope, which Chat honours
// only for a Workspace administrator calling with useAdminAccess=true.
func (s Scope) IsAdmin() bool { return strings.HasPrefix(string(s), "chat.admin.") }

// The scopes named in the catalog. Google describes each at
// https://developers.google.com/workspace/chat/authenticate-authorize.
const (
	ScopeBot                       Scope = "chat.bot"
	ScopeAppSpaces                 Scope = "chat.app.spaces"
	ScopeAppSpacesCreate           Scope = "chat.app.spaces.create"
	ScopeAppSpacesReadonly         Scope = "chat.app.spaces.readonly"
	ScopeAppMemberships            Scope = "chat.app.memberships"
	ScopeAppMembershipsReadonly    Scope = "chat.app.memberships.readonly"
	ScopeAppMessagesReadonly       Scope = "chat.app.messages.readonly"
	ScopeAppDelete                 Scope = "chat.app.delete"
	ScopeAppAllMembershipsReadonly Scope = "chat.app.all.memberships.readonly"
	ScopeAppAllMessagesReadonly    Scope = "chat.app.all.messages.readonly"
	ScopeAppAllSpacesReadonly      Scope = "chat.app.all.spaces.readonly"
	ScopeAdminDelete               Scope = "chat.admin.delete"
	ScopeAdminMemberships          Scope = "chat.admin.memberships"
	ScopeAdminMembershipsReadonly  Scope = "chat.admin.memberships.readonly"
	ScopeAdminSpaces               Scope = "chat.admin.spaces"
	ScopeAdminSpacesReadonly       Scope = "chat.admin.spaces.readonly"
	ScopeCustomEmojis              Scope = "chat.customemojis"
	ScopeCustomEmojisReadonly      Scope = "chat.customemojis.readonly"
	ScopeDelete                    Scope = "chat.delete"
	ScopeImport                    Scope = "chat.import"
	ScopeMemberships               Scope = "chat.memberships"
	ScopeMembershipsApp            Scope = "chat.memberships.app"
	ScopeMembershipsReadonly       Scope = "chat.memberships.readonly"
	ScopeMessages                  Scope = "chat.messages"
	ScopeMessagesCreate            Scope = "chat.messages.create"
	ScopeMessagesReactions         Scope = "chat.messages.reactions"
	ScopeMessagesReactionsCreate   Scope = "chat.messages.reactions.create"
	ScopeMessagesReactionsReadonly Scope = "chat.messages.reactions.readonly"
	ScopeMessagesReadonly          Scope = "chat.messages.readonly"
	ScopeSpaces                    Scope = "chat.spaces"
	ScopeSpacesCreate              Scope = "chat.spaces.create"
	ScopeSpacesReadonly            Scope = "chat.spaces.readonly"
	ScopeSpacesPins                Scope = "chat.spaces.pins"
	ScopeSpacesPinsReadonly        Scope = "chat.spaces.pins.readonly"
	ScopeUsersReadstate            Scope = "chat.users.readstate"
	ScopeUsersReadstateReadonly    Scope = "chat.users.readstate.readonly"
	ScopeUsersSpacesettings        Scope = "chat.users.spacesettings"
	ScopeUsersSections             Scope = "chat.users.sections"
	ScopeUsersSectionsReadonly     Scope = "chat.users.sections.readonly"
	ScopeUsersAvailability         Scope = "chat.users.availability"
	ScopeUsersAvailabilityReadonly Scope = "chat.users.availability.readonly"
)

// allScopes are the scopes of the discovery document, in its order.
var allScopes = func() []Scope {
	var out []Scope
	for _, s := range discovery.Scopes() {
		out = append(out, Scope(s.Name))
	}
	return out
}()

var scopeSet = func() map[Scope]bool {
	m := make(map[Scope]bool, len(allScopes))
	for _, s := range allScopes {
		m[s] = true
	}
	return m
}()

// Scopes returns every Chat scope the discovery document defines, sorted.
// The caller may modify the returned slice.
func Scopes() []Scope { return append([]Scope(nil), allScopes...) }

// ParseScope accepts a scope in short form ("chat.bot") or as a URL
// ("https://www.googleapis.com/auth/chat.bot") and reports whether it is a
// scope of the Chat API's discovery document.
func ParseScope(s string) (Scope, bool) {
	s = strings.TrimPrefix(s, ScopePrefix)
	return Scope(s), scopeSet[Scope(s)]
}

// ScopeKey returns a canonical string for a set of scopes: sorted,
// de-duplicated, space-separated. Token caches key on it.
func ScopeKey(scopes []Scope) string {
	if len(scopes) == 1 { // what nearly every call asks for
		return string(scopes[0])
	}
	ss := make([]string, 0, len(scopes))
	for _, s := range scopes {
		ss = append(ss, string(s))
	}
	sort.Strings(ss)
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}
