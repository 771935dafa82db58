// Package uploads keeps the resumable upload sessions (media.upload with
// uploadType=resumable) that pass through the broker, each bound to the
// caller, space and subject that started it.
//
// A start's answer names the session URL: the same upload path with an
// upload_id. Sessions.Started records that session and rewrites the URL
// to the broker's own address, so the caller's client sends the bytes
// (and its secret) to the broker, never to Google; a URL that is not
// the upstream's own upload path for the same space is dropped.
// Sessions.Check lets only the session's caller, for its space and
// subject, continue it: an upload_id the broker did not see start
// (another caller's, a made-up one, one from before a restart) is
// refused with 404, so one caller can neither append to nor learn of
// another's upload. Sessions.Subject gives a continuation sent without
// the start's subject header the session's subject.
//
// The record is bounded (an evicted session only makes its caller start
// again) and safe for concurrent use. It knows nothing of the pipeline
// that calls it.
package uploads
