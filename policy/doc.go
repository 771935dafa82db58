// Package policy reads chat-broker's policy file and decides, for each
// call to the Google Chat API, whether a caller may make it and with
// which scope its token is minted. docs/policy.md describes the file.
//
// Parse and Load turn a file into a *Policy (ParseWith and LoadWith take
// Options: SkipSecretFiles checks a policy where its Secrets are not
// mounted, and such a policy matches no caller by a secretFile). CallerBySecret, CallerByPeer
// and CallerByServiceAccount identify a caller; Decide (and DecideRequest,
// for admin access and calls that need a scope per thing they read)
// answers for one call with a Decision; Store holds the policy in force.
//
// # Promises
//
//   - Strict parsing: an unknown or misspelled field, a duplicate key, a
//     value of the wrong type, a second YAML document or a rule that
//     could never allow anything is an error, never ignored. Parse
//     reports every problem at once as an *Error, one line each: the
//     file, the field path (or line), what is wrong and the fix.
//   - Default deny: a call is allowed only when a rule of the caller
//     lists the method and covers the space, the caller may act as the
//     subject (if any), and it is granted a scope the method accepts;
//     it then gets the narrowest such scope, or one its rule prefers.
//     Admin access (useAdminAccess) needs adminAccess: true, a subject
//     and a chat.admin.* scope. Every deny carries a
//     Reason, the rule or field to change and a message naming the file.
//   - Immutable: a *Policy and its *Caller values never change after
//     Parse, and are safe for concurrent use. Decide costs the same with
//     one caller or ten thousand.
//   - Validated swaps: a *Policy exists only for a valid file. Store.Reload
//     parses the new file first and swaps it in only when it is valid;
//     otherwise (and on Swap(nil)) the last good policy stays.
//     A request calls Store.Load once and uses that policy throughout; a
//     caller from another policy is refused (UNKNOWN_CALLER), so identity
//     and rules always come from the same file.
//
// # What it does not do
//
// It does not read HTTP requests, enforce rate limits (Limits is data
// for the proxy; Limits.EffectiveBurst gives a bucket's burst), mint
// tokens, watch files or log, and it does not read request bodies or
// filters: the proxy does, and asks DecideRequest with what it found (the
// spaces a search names, the scopes a space-events filter needs, admin
// access). It does not know whether an administrator has approved a
// chat.app.* scope or whether the app is a member of a space: Google
// answers those.
package policy
