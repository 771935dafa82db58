// Package fakeclock holds the clocks tests drive time with: Clock, moved
// by hand (Advance) with timers that fire when it gets there; Instant,
// whose timers fire at once; and Warp, real time sped up, for end-to-end
// runs. Each has Now and After methods, the pair of functions the
// broker's packages take as their injected clock. The clocks are safe
// for concurrent use.
package fakeclock
