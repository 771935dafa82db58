// Package filters reads what a call asks to see from where Chat reads
// it, for the policy to judge: useAdminAccess in the query, the kinds of
// event a spaces.spaceEvents filter asks for (each needs its own scope),
// and the spaces a spaces.messages.search filter names in the body
// (gunzipped under the method's JSON cap, exact field names, no
// duplicates).
//
// What cannot be read for certain is refused with an internal/refusal
// error (FILTER_NOT_READABLE, PARAMETER_NOT_ALLOWED,
// SEARCH_PARENT_INVALID) that says how to write it. The package decides
// nothing: it knows neither the policy nor the pipeline that calls it.
package filters
