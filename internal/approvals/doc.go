// Package approvals tracks what the broker has seen of a Workspace
// admin's approval of each chat.app.* scope: unknown until a call with
// the scope comes back, approved after a success, not approved after
// Chat's "administrator must grant the app" 403.
//
// It only records: the broker never refuses a call because a scope
// looked unapproved, since an admin may approve at any time and the next
// successful call flips the state back. The set of scopes is fixed by
// the catalog, so a Tracker is built once and updated with atomics: the
// request path takes no lock. A Tracker is safe for concurrent use.
package approvals
