package sharedlimits

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chat-broker/chat-broker/chatapi"
	"github.com/chat-broker/chat-broker/internal/fakeclock"
	"github.com/chat-broker/chat-broker/internal/redistest"
	"github.com/chat-broker/chat-broker/internal/shaping"
	"github.com/chat-broker/chat-broker/internal/testlog"
)

// open returns a Store on srv with a fresh prefix, timed by clk when not
// nil, and a plain client to look at its keys.
func open(t *testing.T, srv *redistest.Server, clk *fakeclock.Clock) (*Store, *redis.Client) {
	t.Helper()
	cfg := Config{URL: srv.URL, Prefix: Prefix(t.Name()), Timeout: time.Second}
	if clk != nil {
		cfg.Now = clk.Now
	}
	st, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { raw.Close() })
	return st, raw
}

// GCRA against real Redis: a bucket gives its burst at once, then one
// token per interval, reserved ahead up to the longest wait allowed;
// past it nothing is taken. Several buckets are taken all or none.
func TestTakeGCRA(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	perSec := shaping.Rate{Events: 60, Per: time.Minute, Burst: 3} // one a second, bursts of 3
	tests := []struct {
		name    string
		takes   int           // takes at the same instant before the one checked
		advance time.Duration // then the clock moves on
		maxWait time.Duration
		want    shaping.Taken
	}{
		{"first of a burst", 0, 0, 0, shaping.Taken{Over: -1}},
		{"last of a burst", 2, 0, 0, shaping.Taken{Over: -1}},
		{"past the burst, no wait allowed", 3, 0, 0, shaping.Taken{Wait: time.Second, Over: 0}},
		{"past the burst, reserved within the wait", 3, 0, time.Second, shaping.Taken{Wait: time.Second, Over: -1}},
		{"two past the burst", 4, 0, 5 * time.Second, shaping.Taken{Wait: 2 * time.Second, Over: -1}},
		{"refilled one token", 3, time.Second, 0, shaping.Taken{Over: -1}},
		{"refilled in part", 3, 400 * time.Millisecond, time.Second, shaping.Taken{Wait: 600 * time.Millisecond, Over: -1}},
		{"refilled whole", 3, time.Hour, 0, shaping.Taken{Over: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New()
			st, _ := open(t, srv, clk)
			b := []shaping.Bucket{{Key: "project:message-writes", Rate: perSec}}
			for i := range tc.takes {
				if got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: b, MaxWait: time.Hour}); err != nil || got.Over != -1 {
					t.Fatalf("take %d: %+v, %v", i, got, err)
				}
			}
			clk.Advance(tc.advance)
			got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: b, MaxWait: tc.maxWait})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	t.Run("all or none", func(t *testing.T) {
		clk := fakeclock.New()
		st, _ := open(t, srv, clk)
		wide := shaping.Bucket{Key: "project:message-writes", Rate: shaping.Rate{Events: 100, Per: time.Second, Burst: 100}}
		narrow := shaping.Bucket{Key: "space-writes:spaces/A", Rate: shaping.Rate{Events: 1, Per: time.Minute, Burst: 1}}
		both := []shaping.Bucket{wide, narrow}
		if got, _ := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: both}); got.Over != -1 {
			t.Fatalf("first take: %+v", got)
		}
		// The narrow bucket is empty: nothing is taken, the wide one included.
		for range 50 {
			got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: both})
			if err != nil || got.Over != 1 || got.Wait != time.Minute {
				t.Fatalf("over the narrow bucket: %+v, %v; want Over 1, Wait 1m", got, err)
			}
		}
		// So the wide bucket still has 99 of its 100 at once.
		for i := range 99 {
			if got, _ := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: []shaping.Bucket{wide}}); got.Over != -1 || got.Wait != 0 {
				t.Fatalf("wide take %d: %+v; the refused takes spent its tokens", i, got)
			}
		}
		if got, _ := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: []shaping.Bucket{wide}}); got.Over != 0 {
			t.Fatalf("wide take 100: %+v, want over", got)
		}
	})
}

// A hold set by one broker answers every broker's take with its time
// left and takes nothing; a shorter hold never shortens it; it ends on
// time.
func TestHoldShared(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	clk := fakeclock.New()
	a, _ := open(t, srv, clk)
	b, err := Open(Config{URL: srv.URL, Prefix: a.prefix, Now: clk.Now, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	one := []shaping.Bucket{{Key: "space-writes:spaces/A", Rate: shaping.Rate{Events: 1, Per: time.Hour, Burst: 1}}}
	if err := a.Hold(ctx, "spaces/A", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.Hold(ctx, "spaces/A", time.Second); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		want    shaping.Taken
	}{
		{0, shaping.Taken{Held: 3 * time.Second, Over: -1}},
		{2 * time.Second, shaping.Taken{Held: time.Second, Over: -1}},
		{time.Second, shaping.Taken{Over: -1}},       // the hold is over; the bucket's only token is taken now
		{0, shaping.Taken{Wait: time.Hour, Over: 0}}, // so the bucket was untouched during the hold
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		got, err := b.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: one})
		if err != nil {
			t.Fatal(err)
		}
		if got != s.want {
			t.Errorf("step %d: got %+v, want %+v", i, got, s.want)
		}
	}
	// Another space is not held.
	if got, _ := b.Take(ctx, shaping.Take{Hold: "spaces/B"}); got.Held != 0 {
		t.Errorf("spaces/B: %+v, want not held", got)
	}
}

// A token given back is there for the next call, as if never taken;
// a full bucket gets nothing more, so giving back never makes a burst
// larger.
func TestReturn(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	clk := fakeclock.New()
	st, raw := open(t, srv, clk)
	perSec := []shaping.Bucket{{Key: "project:message-writes", Rate: shaping.Rate{Events: 60, Per: time.Minute, Burst: 2}}}
	take := func() shaping.Taken {
		t.Helper()
		got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: perSec, MaxWait: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	giveBack := func() {
		t.Helper()
		if err := st.Return(ctx, perSec); err != nil {
			t.Fatal(err)
		}
	}
	take()
	take()
	if got := take(); got.Wait != time.Second {
		t.Fatalf("third take: %+v, want a 1s wait", got)
	}
	giveBack() // the third call's caller went away
	if got := take(); got.Wait != time.Second {
		t.Errorf("after giving back: %+v, want the same 1s wait again", got)
	}
	giveBack()
	giveBack()
	giveBack() // more than was taken: the bucket is only full
	if n, _ := raw.Exists(ctx, st.prefix+"project:message-writes").Result(); n != 0 {
		t.Errorf("a full bucket still has its key")
	}
	for i, want := range []time.Duration{0, 0, time.Second} {
		if got := take(); got.Wait != want || got.Over != -1 {
			t.Errorf("take %d after the bucket filled: %+v, want wait %v (a burst of 2, not more)", i, got, want)
		}
	}
}

// On Redis's own clock, keys expire once they limit nothing, so an idle
// app leaves nothing behind.
func TestKeysExpire(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	st, raw := open(t, srv, nil)
	b := []shaping.Bucket{{Key: "project:message-writes", Rate: shaping.Rate{Events: 60, Per: time.Minute}}}
	if got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: b}); err != nil || got.Over != -1 {
		t.Fatalf("%+v, %v", got, err)
	}
	if err := st.Hold(ctx, "spaces/A", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key string
		max time.Duration
	}{
		{st.prefix + "project:message-writes", 2100 * time.Millisecond},
		{st.prefix + "hold:spaces/A", 2600 * time.Millisecond},
	} {
		ttl, err := raw.PTTL(ctx, tc.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > tc.max {
			t.Errorf("%s: PTTL %v, want within (0, %v]", tc.key, ttl, tc.max)
		}
	}
}

// rediss:// with the server's CA, and a password: it works with the right
// password; the wrong one fails with an error that does not hold it.
func TestTLSAndPassword(t *testing.T) {
	const password = "s3cret-redis-password-7f1d"
	srv := redistest.Start(t, redistest.Options{TLS: true, Password: password})
	ctx := context.Background()
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"right password", password, true},
		{"wrong password", "not-" + password, false},
		{"no password", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(Config{URL: srv.URL, Password: tc.password, CAFile: srv.CAFile, Prefix: Prefix("tls"), Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			_, err = st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: []shaping.Bucket{{Key: "project:message-writes", Rate: shaping.Rate{Events: 1, Per: time.Second}}}})
			if (err == nil) != tc.ok {
				t.Fatalf("take: %v, want ok %v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("the error holds the password: %v", err)
			}
			if strings.Contains(st.Addr(), password) || !strings.HasPrefix(st.Addr(), "rediss://127.0.0.1:") {
				t.Errorf("Addr %q", st.Addr())
			}
		})
	}
	t.Run("without the CA", func(t *testing.T) {
		st, err := Open(Config{URL: srv.URL, Password: password, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Ping(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("ping without the server's CA: %v, want a certificate error", err)
		}
	})
}

// A password rotated in its file (as Kubernetes updates a mounted
// Secret) is used from the next new connection on, without a restart.
// A file that cannot be read fails new connections, naming the file and
// never the password.
func TestPasswordFileRotation(t *testing.T) {
	const oldPassword, newPassword = "old-redis-password-0123", "new-redis-password-4567"
	srv := redistest.Start(t, redistest.Options{Password: oldPassword})
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "password")
	write := func(p string) {
		if err := os.WriteFile(file, []byte(p+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(oldPassword)
	st, err := Open(Config{URL: srv.URL, PasswordFile: file, Prefix: Prefix("rotate"), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("with the password from the file: %v", err)
	}

	// The rotation: Redis takes the new password, the file gets it, and
	// Redis drops every connection made with the old one.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: oldPassword})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "requirepass", newPassword).Err(); err != nil {
		t.Fatal(err)
	}
	write(newPassword)
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no").Err(); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Fatal(err)
	}
	// The first call may find its pooled connection dead; the next one
	// dials with the new password.
	if err := st.Ping(ctx); err != nil {
		if err := st.Ping(ctx); err != nil {
			t.Fatalf("after the rotation: %v", err)
		}
	}

	os.Remove(file)
	admin = redis.NewClient(&redis.Options{Addr: srv.Addr, Password: newPassword})
	defer admin.Close()
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the first call may find its pooled connection dead
		err = st.Ping(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), "password file: open "+file) || strings.Contains(err.Error(), newPassword) {
		t.Errorf("ping with the file gone: %v; want an error naming the file, without the password", err)
	}
	st2, err := Open(Config{URL: srv.URL, PasswordFile: file, Prefix: Prefix("rotate")})
	if err == nil || !strings.Contains(err.Error(), "password file: open "+file) {
		t.Errorf("Open with a missing password file: %v, %v", st2, err)
	}
	if _, err := Open(Config{URL: srv.URL, Password: "x", PasswordFile: file}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("Password and PasswordFile: %v", err)
	}
}

// On a Redis Cluster of three masters: apps whose hash tags live on
// every node each get their own bucket and hold, each call's keys on one
// node; a client that is not told it talks to a cluster fails where a
// key lives on another node.
func TestCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	ctx := context.Background()
	rate := shaping.Rate{Events: 1, Per: time.Hour, Burst: 1}
	b := []shaping.Bucket{{Key: "project:message-writes", Rate: rate}, {Key: "space-writes:spaces/A", Rate: rate}}
	onNode := map[string]bool{}
	plainFailed := false
	for i := range 12 {
		app := fmt.Sprintf("app-%d", i)
		st, err := Open(Config{URL: nodes[0].URL, Cluster: true, Prefix: Prefix(app), Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: b}); err != nil || got.Over != -1 {
			t.Fatalf("%s: first take: %+v, %v", app, got, err)
		}
		if got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: b}); err != nil || got.Over != 0 {
			t.Fatalf("%s: second take: %+v, %v; want refused by its own bucket", app, got, err)
		}
		if err := st.Hold(ctx, "spaces/A", time.Minute); err != nil {
			t.Fatalf("%s: hold: %v", app, err)
		}
		if got, err := st.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: b}); err != nil || got.Held <= 0 {
			t.Fatalf("%s: take during the hold: %+v, %v", app, got, err)
		}
		// Which node holds the app's keys.
		raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr}})
		defer raw.Close()
		node, err := raw.MasterForKey(ctx, Prefix(app)+"hold:spaces/A")
		if err != nil {
			t.Fatal(err)
		}
		onNode[node.Options().Addr] = true

		plain, err := Open(Config{URL: nodes[0].URL, Prefix: Prefix(app), Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		if _, err := plain.Take(ctx, shaping.Take{Hold: "spaces/A", Buckets: b}); err != nil && strings.Contains(err.Error(), "MOVED") {
			plainFailed = true
		}
	}
	if len(onNode) != 3 {
		t.Errorf("the apps' keys are on %d nodes, want all 3", len(onNode))
	}
	if !plainFailed {
		t.Error("a plain client never met a key on another node (MOVED)")
	}
	if _, err := Open(Config{URL: "redis://127.0.0.1:6379/2", Cluster: true}); err == nil || !strings.Contains(err.Error(), "only database 0") {
		t.Errorf("cluster with database 2: %v", err)
	}

	// The node that holds an app's keys goes away: Ping fails for that
	// app, though the other nodes still answer PING.
	st, err := Open(Config{URL: nodes[0].URL, Cluster: true, Prefix: Prefix("app-0"), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("ping with every node up: %v", err)
	}
	raw := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{nodes[0].Addr}})
	defer raw.Close()
	owner, err := raw.MasterForKey(ctx, Prefix("app-0")+"probe")
	if err != nil {
		t.Fatal(err)
	}
	var other *redistest.Server
	for _, n := range nodes {
		if n.Addr == owner.Options().Addr {
			n.Stop()
		} else {
			other = n
		}
	}
	if err := redis.NewClient(&redis.Options{Addr: other.Addr}).Ping(ctx).Err(); err != nil {
		t.Fatalf("another node does not answer PING: %v", err)
	}
	if err := st.Ping(ctx); err == nil {
		t.Error("Ping succeeded with the node holding the app's keys stopped")
	}
}

func TestOpenErrors(t *testing.T) {
	const secret = "hunter2-in-the-url"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"password in the URL", Config{URL: "redis://user:" + secret + "@127.0.0.1:6379/0"}, "holds a password"},
		{"unparseable URL with a password", Config{URL: "redis://user:" + secret + "@127.0.0.1:bad port/0"}, "not a URL"},
		{"scheme", Config{URL: "http://127.0.0.1:6379"}, `scheme "http"`},
		{"no host", Config{URL: "redis:///0"}, "no host"},
		{"CA without TLS", Config{URL: "redis://127.0.0.1:6379/0", CAFile: "/nonexistent"}, "rediss://"},
		{"bad database", Config{URL: "redis://127.0.0.1:6379/zero"}, "database"},
		{"missing CA file", Config{URL: "rediss://127.0.0.1:6379/0", CAFile: "/nonexistent/ca.crt"}, "CA file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(tc.cfg)
			if err == nil {
				st.Close()
				t.Fatalf("Open(%q) succeeded", tc.cfg.URL)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

// Redis stopped, then hung, then back: every call is paced (none fails),
// by the broker's own limits while Redis is away, said once in the log
// each time, and by the shared ones again once a probe gets through.
func TestFallbackAndBack(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	clk := fakeclock.New()
	st, err := Open(Config{URL: srv.URL, Prefix: Prefix(t.Name()), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs testlog.Buffer
	changes := make(chan bool, 10)
	shared, err := shaping.NewShared(shaping.SharedConfig{
		Store: st, Budget: 200 * time.Millisecond, After: clk.After,
		Logger:   slog.New(slog.NewJSONHandler(&logs, nil)),
		OnChange: func(up bool) { changes <- up },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	sh, err := shaping.New(shaping.Config{Shared: shared,
		Project: map[chatapi.QuotaClass]shaping.Rate{chatapi.QuotaMessageWrites: {Events: 6000, Per: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := chatapi.Lookup("spaces.messages.create")
	pace := func(what string) {
		t.Helper()
		ctx := context.Background()
		if err := sh.Pace(ctx, time.Now().Add(time.Minute), m, "spaces/A"); err != nil {
			t.Fatalf("%s: a call failed: %v", what, err)
		}
	}
	fallbackLines := func() int { return strings.Count(logs.String(), "did not answer within its budget") }
	backLines := func() int { return strings.Count(logs.String(), "answers again") }

	pace("redis up")
	if !sh.SharedUp() || shared.Errors() != 0 {
		t.Fatalf("up %v, errors %d before any trouble", sh.SharedUp(), shared.Errors())
	}
	outages := []struct {
		name       string
		stop, back func()
	}{
		{"stopped", srv.Stop, srv.Restart},
		{"hung", srv.Pause, srv.Resume},
	}
	for i, o := range outages {
		t.Run(o.name, func(t *testing.T) {
			o.stop()
			for range 5 {
				pace("redis " + o.name)
			}
			if up := <-changes; up {
				t.Fatal("no fall back")
			}
			if sh.SharedUp() || fallbackLines() != i+1 || shared.Fallbacks() != int64(i+1) {
				t.Fatalf("up %v, %d fall-back lines, %d fallbacks; want down, said once per outage\n%s", sh.SharedUp(), fallbackLines(), shared.Fallbacks(), logs.String())
			}
			// A probe while Redis is still away changes nothing.
			clk.WaitPending(t, 1)
			clk.Advance(time.Second)
			clk.WaitPending(t, 1)
			if sh.SharedUp() {
				t.Fatal("back up while Redis is away")
			}
			o.back()
			clk.Advance(time.Second)
			if up := <-changes; !up {
				t.Fatal("not back")
			}
			errs := shared.Errors()
			pace("redis back")
			if !sh.SharedUp() || shared.Errors() != errs || backLines() != i+1 {
				t.Fatalf("after the probe: up %v, errors %d → %d, %d back lines\n%s", sh.SharedUp(), errs, shared.Errors(), backLines(), logs.String())
			}
		})
	}
}
