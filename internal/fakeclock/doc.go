// Package fakeclock holds the clocks tests drive time with, one set for
// every package: Clock, moved by hand (Advance fires the timers it
// reaches; Move and Fire split the two for tests of a late timer);
// Instant, whose timers fire at once; Warp, real time sped up, for
// end-to-end runs; and Skew, real time plus an offset, for a second
// party whose clock runs ahead. Each has a Now method, and all but Skew
// an After method: the pair of functions the broker's packages take as
// their injected clock. The clocks are safe for concurrent use.
package fakeclock
