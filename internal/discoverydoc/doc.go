// Package discoverydoc serves Chat's discovery document (embedded from
// the pinned module by chatapi/discovery) pointed at the broker, so that
// clients that build themselves from it (Python's
// google-api-python-client, on any version) fetch it from the broker and
// call the broker.
//
// It answers at Chat's own discovery path and the older directory path,
// with rootUrl, baseUrl and mtlsRootUrl set to the address the client
// called. The document is public, so no caller identity is needed;
// nothing in it is the broker's. Refusals are internal/refusal errors
// for the caller of Serve to write.
package discoverydoc
