// Package sharedlimits keeps the broker's per-space and per-project
// buckets, and the holds that Chat's 429s set, on Redis (or Valkey, which
// speaks the same protocol), so that every broker of one app shares
// them. It implements shaping.Store; shaping.Shared falls back to each
// broker's own limits when Redis is slow or down.
//
// Each call is one round trip: a Lua script checks the space's hold and
// takes a token from each bucket, all or none, with GCRA (the generic
// cell rate algorithm, as github.com/go-redis/redis_rate does it): a
// bucket is one key holding its theoretical arrival time, so it costs one
// small string however busy it is. Unlike redis_rate, the script reserves
// a token up to a wait (as golang.org/x/time/rate's Reserve does), so a
// call over the rate may wait briefly for its turn instead of being
// refused, and several buckets are taken atomically. Times come from
// Redis's own clock (TIME), so brokers whose clocks disagree still share
// one bucket fairly.
//
// A call that does not go after all gives its tokens back (Return): each
// bucket's time moves back one interval, never past a full bucket.
//
// Config.Cluster talks to a Redis Cluster instead of one server; an app's
// keys share a hash tag, so each call's keys are on one node.
//
// The password comes from Config.Password or from Config.PasswordFile,
// read at each new connection so that a rotated password needs no
// restart; neither ever shows in an error or Addr.
//
// Keys are "<prefix>hold:<space>" and "<prefix><bucket>"; the prefix
// holds a hash tag ({…}) so that all the keys of one app map to one slot.
// Every key expires a second after it no longer limits anything (a
// bucket past its time is full, a hold past its time holds nothing, so
// the second only keeps a clock that lags Redis's from seeing a key
// vanish early).
package sharedlimits
