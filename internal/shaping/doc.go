// Package shaping paces calls before they reach Chat, so that one noisy
// caller cannot spend the app's quota and an outage builds no unbounded
// queue: per-caller token buckets (keyed by the caller's name and
// limits, plain values), opt-in per-space and per-project buckets, holds
// that pause the calls to a space after Chat answers 429 and let them go
// in arrival order when the hold ends, and caps on the calls in flight
// and waiting. A call over a limit waits briefly (Config.Wait) or is
// refused with 429 and Retry-After; past the caps, 503 OVERLOADED.
//
// With Config.Shared, the per-space and per-project buckets and the holds
// live in a Store that every broker of the app shares (Pace); when the
// store is slow or down, each broker paces alone, at 1/Brokers of those
// limits. No call fails because of the store.
//
// Every wait goes through the Config's clock, so tests drive it with a
// fake one. A Shaper is safe for concurrent use.
package shaping
