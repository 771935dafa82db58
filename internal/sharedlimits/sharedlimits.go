package sharedlimits

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chat-broker/chat-broker/internal/shaping"
)

// Config says which Redis to use and how.
type Config struct {
	// URL is redis://[user@]host:port[/db] or rediss://… for TLS. It must
	// not hold a password: give PasswordFile (or Password) instead, so
	// that it never shows in a process list, a pod spec or a log.
	URL string
	// Password is Redis's AUTH password; empty for none.
	Password string
	// PasswordFile, instead of Password, names a file holding it (a
	// trailing newline is not part of it). It is read each time a
	// connection is opened, so a password rotated in the file (a
	// Kubernetes Secret updated in place) is used from the next new
	// connection on, without a restart; a file that cannot be read then
	// fails that connection, as an unreachable Redis would.
	PasswordFile string
	// CAFile, if set, is a PEM file of the CAs that sign the server's
	// certificate (rediss:// only); empty: the system's roots.
	CAFile string
	// Prefix starts every key, e.g. "chat-broker:{my-project}:". It
	// separates apps (projects) sharing one Redis.
	Prefix string
	// Timeout bounds dialing, reads and writes; callers bound each call
	// with their context too. 0 means 5 ms.
	Timeout time.Duration
	// Now, if set, is the clock the scripts use instead of Redis's TIME
	// (for tests driven by a fake clock).
	Now func() time.Time
	// PoolSize is the most connections kept to Redis (to each node of a
	// cluster); 0 means go-redis's default (10 per CPU).
	PoolSize int
	// Cluster says the URL is a Redis Cluster's node or discovery
	// endpoint (Memorystore for Redis Cluster, ElastiCache in cluster
	// mode): the client learns the other nodes from it and sends each
	// call to the node that holds its keys. Every key of an app shares a
	// hash tag (Prefix), so one call's keys are always on one node. A
	// cluster has only database 0.
	Cluster bool
}

// Store is a shaping.Store on Redis. It is safe for concurrent use.
type Store struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
	addr   string
}

var _ shaping.Store = (*Store)(nil)

// Open checks cfg and returns a Store; it does not dial (the first call
// does), so a broker starts whether or not Redis is up. Errors never
// hold the password.
func Open(cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse's error quotes the whole URL, which may hold a
		// password: name only what is wrong.
		return nil, errors.New("sharedlimits: not a URL; want redis://host:6379/0 or rediss://host:6380/0")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("sharedlimits: scheme %q: want redis:// or rediss:// (TLS)", u.Scheme)
	}
	if _, has := u.User.Password(); has {
		return nil, errors.New("sharedlimits: the URL holds a password: remove it and give it in a file (--shared-limits-password-file), so it shows in no process list or log")
	}
	if u.Host == "" {
		return nil, errors.New("sharedlimits: the URL names no host; want redis://host:6379/0")
	}
	if cfg.Password != "" && cfg.PasswordFile != "" {
		return nil, errors.New("sharedlimits: give Password or PasswordFile, not both")
	}
	if cfg.PasswordFile != "" {
		if _, err := readPassword(cfg.PasswordFile); err != nil {
			return nil, fmt.Errorf("sharedlimits: %w", err)
		}
	}
	if cfg.CAFile != "" && u.Scheme != "rediss" {
		return nil, errors.New("sharedlimits: a CA file is for rediss:// (TLS) only")
	}
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("sharedlimits: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	if opts.TLSConfig != nil && cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("sharedlimits: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sharedlimits: CA file %s holds no PEM certificate", cfg.CAFile)
		}
		opts.TLSConfig.RootCAs = pool
	}
	if opts.TLSConfig != nil {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = shaping.DefaultSharedBudget
	}
	opts.Password = cfg.Password
	if file := cfg.PasswordFile; file != "" {
		user := opts.Username
		opts.CredentialsProviderContext = func(context.Context) (string, string, error) {
			password, err := readPassword(file)
			return user, password, err
		}
	}
	// One try per call, bounded: a broker would rather use its own
	// limits than wait for a retry.
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.DialTimeout = max(timeout, 100*time.Millisecond) // a TLS handshake needs a few round trips
	opts.ReadTimeout, opts.WriteTimeout = timeout, timeout
	opts.ContextTimeoutEnabled = true
	opts.PoolTimeout = timeout
	if cfg.PoolSize > 0 {
		opts.PoolSize = cfg.PoolSize
	}
	// The broker's identity in CLIENT LIST, and no RESP3 handshake
	// surprises on older servers.
	opts.ClientName = "chat-broker"
	opts.DisableIdentity = true
	s := &Store{prefix: cfg.Prefix, now: cfg.Now}
	s.addr = u.Scheme + "://" + opts.Addr + "/" + strconv.Itoa(opts.DB)
	if !cfg.Cluster {
		s.client = redis.NewClient(opts)
		return s, nil
	}
	if opts.DB != 0 {
		return nil, fmt.Errorf("sharedlimits: database %d: a Redis Cluster has only database 0", opts.DB)
	}
	s.addr = u.Scheme + "://" + opts.Addr + " (cluster)"
	s.client = redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:    []string{opts.Addr},
		Username: opts.Username, Password: opts.Password, CredentialsProviderContext: opts.CredentialsProviderContext,
		TLSConfig:  opts.TLSConfig,
		MaxRetries: opts.MaxRetries, DialerRetries: opts.DialerRetries, DialTimeout: opts.DialTimeout,
		ReadTimeout: opts.ReadTimeout, WriteTimeout: opts.WriteTimeout, ContextTimeoutEnabled: true,
		PoolTimeout: opts.PoolTimeout, PoolSize: opts.PoolSize,
		ClientName: opts.ClientName, DisableIdentity: true,
	})
	return s, nil
}

// readPassword reads a password file; errors name the file, never its
// content.
func readPassword(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Addr names the server for logs: scheme, host, port and database,
// never a user or password.
func (s *Store) Addr() string { return s.addr }

// Close closes the connections.
func (s *Store) Close() error { return s.client.Close() }

// nowArg is the time the scripts use: 0 for Redis's own clock.
func (s *Store) nowArg() int64 {
	if s.now == nil {
		return 0
	}
	return s.now().UnixMicro()
}

// luaNow starts each script: now, in µs, is ARGV[1], or Redis's TIME
// when that is 0.
const luaNow = `
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`

// takeScript checks a hold and takes a token from each bucket, all or
// none, by GCRA. Times are in microseconds.
//
//	KEYS[1]   the hold; KEYS[2..] the buckets
//	ARGV[1]   now (0: Redis's TIME); ARGV[2] the longest wait allowed
//	ARGV[2i+1], ARGV[2i+2] for bucket KEYS[i+1]: its emission interval
//	          (per/events) and its burst tolerance (burst × interval)
//
// It returns {held, wait, over}: held > 0 is the hold's time left (and
// nothing is taken); otherwise wait is the longest wait for a token and
// over is 0 when every token was taken, or the 1-based index of the
// bucket past the longest wait allowed, when none was.
var takeScript = redis.NewScript(luaNow + `local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held > now then
  return {held - now, 0, 0}
end
local maxwait = tonumber(ARGV[2])
local slack = 1000
local worst, over = 0, 0
local tats = {}
for i = 2, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local newtat = tat + interval
  local wait = newtat - tolerance - now
  if wait > worst then worst, over = wait, i - 1 end
  tats[i] = newtat
end
if worst > maxwait then
  return {0, worst, over}
end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + slack)
end
return {0, worst, 0}
`)

// holdScript extends a hold to now + ARGV[2] µs unless it already lasts
// longer. ARGV[1] is now (0: Redis's TIME).
var holdScript = redis.NewScript(luaNow + `local d = tonumber(ARGV[2])
local slack = 1000
local untl = now + d
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], string.format('%d', untl), 'PX', math.floor(d / 1000) + slack)
end
return 0
`)

// returnScript gives back one token to each bucket: its theoretical
// arrival time moves one interval back, never before now (a full
// bucket). ARGV[1] is now (0: Redis's TIME); ARGV[i+1] is the interval
// of KEYS[i].
var returnScript = redis.NewScript(luaNow + `local slack = 1000
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat > now then
    local newtat = tat - tonumber(ARGV[i + 1])
    if newtat <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%d', newtat), 'PX', math.floor((newtat - now) / 1000) + slack)
    end
  end
end
return 0
`)

// interval is a bucket's emission interval in µs (at least 1).
func interval(r shaping.Rate) int64 { return max(r.Per.Microseconds()/int64(r.Events), 1) }

// Take implements shaping.Store: one EVALSHA (an EVAL the first time a
// server sees the script).
func (s *Store) Take(ctx context.Context, t shaping.Take) (shaping.Taken, error) {
	keys := make([]string, 0, 1+len(t.Buckets))
	keys = append(keys, s.prefix+"hold:"+t.Hold)
	args := make([]any, 0, 2+2*len(t.Buckets))
	args = append(args, s.nowArg(), t.MaxWait.Microseconds())
	for _, b := range t.Buckets {
		if b.Rate.IsZero() {
			return shaping.Taken{}, fmt.Errorf("sharedlimits: bucket %s has no rate", b.Key)
		}
		burst := b.Rate.Burst
		if burst <= 0 {
			burst = shaping.DefaultBurst(b.Rate.Events, b.Rate.Per)
		}
		keys = append(keys, s.prefix+b.Key)
		args = append(args, interval(b.Rate), interval(b.Rate)*int64(burst))
	}
	res, err := takeScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return shaping.Taken{}, err
	}
	if len(res) != 3 {
		return shaping.Taken{}, fmt.Errorf("sharedlimits: the take script answered %d values, want 3", len(res))
	}
	held, wait, over := res[0], res[1], res[2]
	if held > 0 {
		return shaping.Taken{Held: time.Duration(held) * time.Microsecond, Over: -1}, nil
	}
	return shaping.Taken{Wait: max(0, time.Duration(wait)*time.Microsecond), Over: int(over) - 1}, nil
}

// Hold implements shaping.Store.
func (s *Store) Hold(ctx context.Context, key string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	return holdScript.Run(ctx, s.client, []string{s.prefix + "hold:" + key}, s.nowArg(), d.Microseconds()).Err()
}

// Return implements shaping.Store: one EVALSHA.
func (s *Store) Return(ctx context.Context, buckets []shaping.Bucket) error {
	keys := make([]string, 0, len(buckets))
	args := make([]any, 0, 1+len(buckets))
	args = append(args, s.nowArg())
	for _, b := range buckets {
		if b.Rate.IsZero() {
			return fmt.Errorf("sharedlimits: bucket %s has no rate", b.Key)
		}
		keys = append(keys, s.prefix+b.Key)
		args = append(args, interval(b.Rate))
	}
	return returnScript.Run(ctx, s.client, keys, args...).Err()
}

// Ping implements shaping.Store. It asks about a key of the app, not a
// bare PING: on a cluster that goes to the node that holds the app's
// keys, and fails (CLUSTERDOWN, or no connection) when that node cannot
// serve them, where a PING would be answered by any node.
func (s *Store) Ping(ctx context.Context) error {
	return s.client.Exists(ctx, s.prefix+"probe").Err()
}

// Prefix returns the key prefix for an app: "chat-broker:{app}:", where
// app (the Google Cloud project, whose Chat quotas every broker of it
// shares) is the hash tag.
func Prefix(app string) string {
	if app == "" {
		app = "default"
	}
	return "chat-broker:{" + app + "}:"
}

// SetLogger sends go-redis's own log lines (a failed dial, a bad
// connection dropped from the pool) to l at debug level: the broker says
// what matters once, through shaping.Shared. go-redis's logger is one
// for the process.
func SetLogger(l *slog.Logger) { redis.SetLogger(slogLogger{l}) }

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(ctx context.Context, format string, v ...any) {
	s.l.DebugContext(ctx, "shared limits: go-redis: "+fmt.Sprintf(format, v...))
}
