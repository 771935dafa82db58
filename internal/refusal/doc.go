// Package refusal is the broker's own answer to a call it will not
// forward: an Error with an HTTP status, a reason and a message that says
// how to fix the call, written (Write) as Google's error JSON with
// ErrorInfo domain "chat-broker", so client libraries report it as they
// report Chat's own errors. Every part of the request path refuses with
// it; Write is the one place an error becomes a response.
package refusal
