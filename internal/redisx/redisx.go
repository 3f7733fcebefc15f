// Package redisx is keel's connection to the Redis that processes sharing
// one Bedrock quota share their state through (docs/redis.md): the client,
// the key layout, the health of the connection and the heartbeat that
// counts the replicas alive.
//
// Every round trip goes through Client.Do, which bounds it by the
// configured timeout and records failures: while Redis fails, Degraded
// reports true, and each store that uses the Client falls back to local
// state with Share of each limit. One log line marks the start of each
// episode and one its end.
package redisx

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/config"
)

// Tunables of the connection.
const (
	// DefaultTimeout bounds a round trip when Options.Timeout is 0: about
	// a hundred loopback round trips, far below a Bedrock call's own time.
	DefaultTimeout = 50 * time.Millisecond
	// DefaultPrefix starts every key when Options.Prefix is empty.
	DefaultPrefix = "keel:"
	// schema is the layout's version, in every key: another version's
	// keys are never read.
	schema = "v1"
	// heartbeatEvery is how often a process says it is alive.
	heartbeatEvery = 2 * time.Second
	// heartbeatTTL is how long a heartbeat counts: three missed beats.
	heartbeatTTL = 3 * heartbeatEvery
	// IdleTTL is how long a target's keys outlive their last use: a
	// minute of quota refills in one, so an older key holds nothing that
	// a fresh one would not.
	IdleTTL = 10 * time.Minute
	// replyLogEvery is how often one kind of error reply is logged again:
	// a script failing on every call must not flood the log, and an
	// operator still sees within a minute that it goes on.
	replyLogEvery = time.Minute
	// RepliesLostAfter is how long every round trip must have been
	// answered with an error reply (none succeeding) for the Client to
	// report sharing lost (Degraded): five heartbeats, so one key's bad
	// content, which the next beat's success clears, never reaches it,
	// while a Redis refusing every write (OOM at maxmemory with
	// noeviction, NOPERM after an ACL change) is reported within 10 s.
	RepliesLostAfter = 5 * heartbeatEvery
	// maxReplyKinds bounds the kinds of error reply counted apart (the
	// metric's label values); further kinds count as "other".
	maxReplyKinds = 16
	// maxKindLen bounds a kind's length: Redis's are words of capitals
	// up to 12 letters (WRONGPASS, CLUSTERDOWN); anything longer is no
	// kind, and counts as "other".
	maxKindLen = 16
	// accountWithin bounds the look-up of this process's AWS account
	// (Options.Account): credentials that take longer (a metadata service
	// that does not answer) leave the prefix unclaimed, not the start
	// held.
	accountWithin = 10 * time.Second
)

// Options configure a Client. The zero value of each field takes its
// default.
type Options struct {
	// URL is redis://[user:password@]host:port[/db] or rediss://.
	URL string
	// Prefix starts every key; empty: DefaultPrefix.
	Prefix string
	// Timeout bounds each round trip; 0: DefaultTimeout.
	Timeout time.Duration
	// TLS adds to a rediss:// URL's TLS settings.
	TLS config.RedisTLS
	// Share is the part of each limit used while Redis fails, and the
	// part a process's own load is weighed against for overload while
	// Redis answers (admission.Sharer); 0: 1 ÷ the replicas counted by the
	// heartbeat (see Client.Share), or 1 while none was ever counted.
	// Operators should set it (docs/redis.md).
	Share float64
	// ID names this process in the heartbeat set; empty: host:pid and a
	// random suffix.
	ID string
	// Logger receives the episode lines; nil: slog.Default().
	Logger *slog.Logger
	// Account, if not nil, returns the AWS account whose quotas this
	// process spends ("" when its credentials do not say). The keys name
	// no account, so one prefix must mean one account: the Client claims
	// the prefix for its account (a hash of it, with each heartbeat) and
	// logs an error, shown in Stats, when a live process of another
	// account holds it. It is called once, in the background, bounded by
	// accountWithin.
	Account func(ctx context.Context) (string, error)
}

// FromConfig returns the Options of a configuration's redis section.
func FromConfig(r config.Redis) Options {
	return Options{URL: r.URL.Value(), Prefix: r.Prefix, Timeout: r.Timeout.D(), TLS: r.TLS, Share: r.Share}
}

// Client is a connection to Redis shared by keel's stores. It is safe for
// concurrent use. Close stops its heartbeat and closes the connection.
type Client struct {
	rdb     *redis.Client
	prefix  string
	timeout time.Duration
	share   float64
	id      string
	log     *slog.Logger

	replicas   atomic.Int64 // the count Share divides by, ≥ 1 (see counted)
	failures   atomic.Uint64
	episodes   atomic.Uint64
	replyCount atomic.Uint64

	mu        sync.Mutex
	downSince time.Time // zero while healthy
	lastErr   string
	replies   map[string]*replyLog // error replies by kind
	lastReply string
	// replySince is when the first error reply since the last success
	// came (zero when the last answer was a success); lost is set once
	// RepliesLostAfter has passed since and it was logged.
	replySince time.Time
	lost       bool
	counts     []count // the heartbeat's counts within heartbeatTTL
	beatDown   bool    // the last beat failed
	every      time.Duration

	replyErrs *prometheus.CounterVec
	now       func() time.Time // the rate limit of the reply logs' clock

	account  string // this process's account's claim; "" while unknown
	conflict string // the claim of another account holding the prefix

	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
	looked    chan struct{} // closed when the account's look-up ended
}

// ErrUnavailable wraps every failure of a round trip (a timeout, a refused
// connection, a Redis error), so that callers can tell Redis's failures
// from their own.
var ErrUnavailable = errors.New("redis: unavailable")

// ErrCallerDone wraps the failure of a round trip that the caller's
// context ended: cancelled, or a deadline that came before the Client's
// own timeout (already past, or passing during the round trip). It says
// nothing of Redis: no episode starts, and a fallback.Gate stays as it
// is. It matches ErrUnavailable, so a store falls back to local state.
var ErrCallerDone = fmt.Errorf("%w: the caller's context ended", ErrUnavailable)

// ErrReply matches a ReplyError: Redis answered, with an error.
var ErrReply = fmt.Errorf("%w: error reply", ErrUnavailable)

// ReplyError is an error reply of Redis to one command that says nothing
// of Redis as a whole (a script's runtime error, WRONGTYPE, OOM, NOPERM,
// MOVED): the operation failed, but the Client stays healthy. It matches
// ErrReply and ErrUnavailable, so a store falls back to local state for
// that operation.
type ReplyError struct {
	// Kind is the reply's first word ("ERR", "WRONGTYPE", "OOM", …), or
	// "other".
	Kind string
	msg  string
}

func (e *ReplyError) Error() string { return "redis: error reply: " + e.msg }

// Is reports whether target is ErrReply or ErrUnavailable.
func (e *ReplyError) Is(target error) bool { return target == ErrReply || target == ErrUnavailable }

// Garbage reports whether the keys the command touched may have caused
// the error (ERR, such as a script's runtime error or HINCRBY on a
// non-integer; WRONGTYPE): a store then resets them.
func (e *ReplyError) Garbage() bool { return e.Kind == "ERR" || e.Kind == "WRONGTYPE" }

// outageReplies are the error replies that say Redis as a whole cannot
// serve for now (loading its data, a replica that lost its primary or
// refuses writes, out of clients, busy with a script, the connection's
// credentials refused since it was opened), not that one command failed.
var outageReplies = map[string]bool{"LOADING": true, "READONLY": true, "MASTERDOWN": true, "CLUSTERDOWN": true,
	"TRYAGAIN": true, "NOREPLICAS": true, "BUSY": true, "MISCONF": true, "NOAUTH": true, "WRONGPASS": true}

// classify returns err as a *ReplyError when it is an error reply that is
// not an outage, else nil.
func classify(err error) *ReplyError {
	var re redis.Error
	if !errors.As(err, &re) {
		return nil // a timeout, a refused or closed connection, a full pool
	}
	msg := re.Error()
	kind, _, _ := strings.Cut(msg, " ")
	if outageReplies[kind] || strings.HasPrefix(msg, "ERR max number of clients") {
		return nil
	}
	if len(kind) > maxKindLen || strings.TrimFunc(kind, func(r rune) bool { return r >= 'A' && r <= 'Z' }) != "" {
		kind = "other"
	}
	return &ReplyError{Kind: kind, msg: msg}
}

// count is a replica count a beat saw, and when.
type count struct {
	n  int64
	at time.Time
}

// beatEvery is heartbeatEvery, but for tests of the count.
var beatEvery = heartbeatEvery

// replyLog is the log's record of one kind of error reply.
type replyLog struct {
	logged time.Time // when it was last logged
	since  int       // replies of the kind not logged since
}

// Open connects to Redis and starts the heartbeat. A URL that does not
// parse, TLS files that do not load and a password Redis refuses are
// errors naming the setting; a Redis that does not answer is not: the
// Client starts degraded, logs it, and keeps trying. So is a Redis
// Cluster node (not supported yet). The first Open sets go-redis's
// logger, which is process-wide, to slog.Default at Debug: a program
// that wants its own sets it after.
func Open(ctx context.Context, o Options) (*Client, error) {
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		// ParseURL's error may quote the URL, password and all.
		return nil, fmt.Errorf("redis.url: not a Redis URL (want redis://host:6379 or rediss://host:6379)")
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout, ro.PoolTimeout = timeout, timeout, timeout, timeout
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = -1   // a failed round trip falls back at once; the next call tries again
	ro.DialerRetries = 1 // likewise a refused dial (go-redis's default dials 5 times, 100 ms apart)
	ro.DisableIdentity = true
	if ro.TLSConfig != nil || o.TLS != (config.RedisTLS{}) {
		if !strings.HasPrefix(o.URL, "rediss://") {
			return nil, fmt.Errorf("redis.tls: set, but redis.url is not rediss://")
		}
		tc, err := tlsConfig(ro.TLSConfig, o.TLS)
		if err != nil {
			return nil, err
		}
		ro.TLSConfig = tc
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redis.prefix: %q holds a brace, which would break the keys' hash tags", prefix)
	}
	if o.Share < 0 || o.Share > 1 {
		return nil, fmt.Errorf("redis.share: must be between 0 and 1, got %g", o.Share)
	}
	id := o.ID
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano()%1e6)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	goredisLog.Do(func() { redis.SetLogger(debugLog{}) })
	c := &Client{rdb: redis.NewClient(ro), prefix: prefix + schema + ":", timeout: timeout, share: o.Share,
		id: id, log: log, stop: make(chan struct{}), done: make(chan struct{}),
		replies: make(map[string]*replyLog), now: time.Now, every: beatEvery, looked: make(chan struct{}),
		replyErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keel_redis_reply_errors_total",
			Help: "Error replies of Redis to one operation (a script's error, OOM, NOPERM, MOVED), by kind: the operation fell back to local state, Redis stayed in use."},
			[]string{"kind"})}
	c.replicas.Store(1)
	bctx, cancel := context.WithTimeout(ctx, timeout)
	err = c.beatOnce(bctx, c.rdb)
	cancel()
	switch {
	case err != nil && strings.Contains(err.Error(), "NOPERM"):
		c.rdb.Close()
		return nil, fmt.Errorf("redis.url: the Redis user lacks a permission keel needs (scripts, and every key under the prefix): %s", redactErr(err))
	case err != nil && isAuth(err):
		c.rdb.Close()
		return nil, fmt.Errorf("redis.url: Redis refused the credentials: %s", redactErr(err))
	case err != nil && classify(err) == nil:
		c.fail(err) // the Client starts degraded
	}
	var answer redis.Error
	if err == nil || errors.As(err, &answer) {
		// Redis answered (a Cluster node without slots says CLUSTERDOWN).
		if cerr := c.notCluster(ctx); cerr != nil {
			c.rdb.Close()
			return nil, cerr
		}
		if re := classify(err); re != nil {
			c.reply(re)
		}
	}
	go c.heartbeat()
	if o.Account != nil {
		go c.lookUpAccount(o.Account)
	} else {
		close(c.looked)
	}
	return c, nil
}

// lookUpAccount asks for this process's account and, when it is known,
// claims the prefix for it.
func (c *Client) lookUpAccount(account func(ctx context.Context) (string, error)) {
	defer close(c.looked)
	ctx, cancel := context.WithTimeout(context.Background(), accountWithin)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	id, err := account(ctx)
	if err != nil || id == "" {
		c.log.Debug("redis: this process's AWS account is not known; the prefix is not claimed for it", "err", err)
		return
	}
	sum := sha256.Sum256([]byte(id))
	claim := "…" + id[max(len(id)-4, 0):] + ":" + hex.EncodeToString(sum[:8])
	c.mu.Lock()
	c.account = claim
	c.mu.Unlock()
	c.claim(context.Background())
}

// claimScript sets KEYS[1] to ARGV[1] for ARGV[2] ms unless it holds
// another claim, and returns the claim it holds.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`)

// claim renews this process's account's claim of the prefix, and notes
// (logging it once per claim seen) another account's.
func (c *Client) claim(ctx context.Context) {
	c.mu.Lock()
	mine := c.account
	c.mu.Unlock()
	if mine == "" {
		return
	}
	var held string
	err := c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
		var err error
		held, err = claimScript.Run(ctx, rdb, []string{c.Key("account", "")}, mine, heartbeatTTL.Milliseconds()).Text()
		return err
	})
	if err != nil {
		return
	}
	conflict := ""
	if held != mine {
		conflict = held
	}
	c.mu.Lock()
	before := c.conflict
	c.conflict = conflict
	c.mu.Unlock()
	if conflict != "" && conflict != before {
		other, _, _ := strings.Cut(held, ":")
		me, _, _ := strings.Cut(mine, ":")
		c.log.Error("redis.prefix: processes of another AWS account share this Redis and prefix; the keys name no account, so their quotas, limits and breakers merge with this one's: give each account its own redis.prefix",
			"account", me, "other", other)
	}
}

// notCluster returns an error naming redis.url when the server is a node
// of a Redis Cluster, which keel does not support yet: a single-node
// client gets MOVED for most keys. A server that does not answer INFO
// passes.
func (c *Client) notCluster(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	info, err := c.rdb.Info(ctx, "cluster").Result()
	if err == nil && strings.Contains(info, "cluster_enabled:1") {
		return fmt.Errorf("redis.url: the server is a Redis Cluster node; keel does not support Redis Cluster yet (docs/redis.md): point it at a single Redis or a primary")
	}
	return nil
}

// goredisLog sets go-redis's logger once per process.
var goredisLog sync.Once

// debugLog sends go-redis's own log lines (each failed dial, say) to
// slog.Default at Debug: the Client's episode lines say it once.
type debugLog struct{}

func (debugLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "redis: go-redis: "+fmt.Sprintf(format, v...))
}

// isAuth reports a refused password or user.
func isAuth(err error) bool {
	s := err.Error()
	return strings.Contains(s, "WRONGPASS") || strings.Contains(s, "NOAUTH") || strings.Contains(s, "invalid password")
}

// redactErr returns err's text, which never holds the password: go-redis's
// errors quote the server's reply and the address only.
func redactErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}

func tlsConfig(base *tls.Config, t config.RedisTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		tc = base.Clone()
	}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca: %s holds no PEM certificate", t.CA)
		}
		tc.RootCAs = pool
	}
	if t.Cert != "" {
		kp, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.cert/key: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc, nil
}

// Close stops the heartbeat, removes this process from the heartbeat set
// (best effort) and closes the connection.
func (c *Client) Close() error {
	first := false
	c.closeOnce.Do(func() { first = true; close(c.stop) })
	if !first {
		return nil
	}
	<-c.done
	<-c.looked
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	c.rdb.ZRem(ctx, c.Key("replicas", ""), c.id)
	return c.rdb.Close()
}

// ID returns the name of this process in the heartbeat set.
func (c *Client) ID() string { return c.id }

// Redis returns the underlying client, for scripts and commands a store
// runs through Do.
func (c *Client) Redis() *redis.Client { return c.rdb }

// Key returns the key of kind for target: prefix, schema, kind and the
// target in braces, a Redis Cluster hash tag, so that all of one target's
// keys live in one slot and one script may touch them together. An empty
// target gives a key without a tag.
func (c *Client) Key(kind, target string) string {
	if target == "" {
		return c.prefix + kind
	}
	return c.prefix + kind + ":{" + strings.NewReplacer("{", "(", "}", ")").Replace(target) + "}"
}

// Do runs fn with a context bounded by the timeout (and by ctx), and
// records the outcome: a failure starts or continues an episode, a success
// ends one. Its error wraps ErrUnavailable. A ctx that has ended already
// makes no round trip; a failure once ctx ended, unless the Client's own
// timeout came first, is the caller's, neither failure nor success: both
// return ErrCallerDone. So a call that arrives with its deadline past, or
// with less time left than a round trip takes, does not make Redis
// "unreachable" for the process; a Redis that hangs is still seen by the
// heartbeat, whose context has no deadline. A redis.Nil reply is a success
// and is returned as it is. An error reply that is no outage (see
// ReplyError) is an answer: it is counted and logged (once a minute per
// kind) and returned as a *ReplyError, and ends an episode like a success.
func (c *Client) Do(ctx context.Context, fn func(ctx context.Context, rdb *redis.Client) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrCallerDone, err)
	}
	parent, own := ctx, time.Now().Add(c.timeout)
	ctx, cancel := context.WithDeadline(ctx, own)
	defer cancel()
	err := fn(ctx, c.rdb)
	if err == nil || errors.Is(err, redis.Nil) {
		c.ok(true)
		return err
	}
	if perr := parent.Err(); perr != nil {
		if d, ok := parent.Deadline(); !ok || d.Before(own) {
			return fmt.Errorf("%w: %w", ErrCallerDone, perr)
		}
	}
	if re := classify(err); re != nil {
		c.ok(false)
		c.reply(re)
		return re
	}
	c.fail(err)
	return fmt.Errorf("%w: %s", ErrUnavailable, redactErr(err))
}

// ResetGarbage deletes keys when err is an error reply they may have
// caused (ReplyError.Garbage), so that the next operation starts them
// afresh, as a store does with what it does not recognise; it reports
// whether it deleted them.
func (c *Client) ResetGarbage(ctx context.Context, err error, keys ...string) bool {
	var re *ReplyError
	if !errors.As(err, &re) || !re.Garbage() {
		return false
	}
	return c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error { return rdb.Del(ctx, keys...).Err() }) == nil
}

// reply counts an error reply and logs it unless its kind was logged less
// than replyLogEvery ago; it logs once that sharing is lost when no round
// trip succeeded for RepliesLostAfter.
func (c *Client) reply(re *ReplyError) {
	c.mu.Lock()
	c.lastReply = re.msg
	if c.replySince.IsZero() {
		c.replySince = c.now()
	}
	lost := !c.lost && c.repliesOnly(c.now())
	c.lost = c.lost || lost
	since := c.replySince
	kind := re.Kind
	if _, ok := c.replies[kind]; !ok && len(c.replies) >= maxReplyKinds {
		kind = "other"
	}
	l := c.replies[kind]
	if l == nil {
		l = &replyLog{}
		c.replies[kind] = l
	}
	now := c.now()
	logIt := l.logged.IsZero() || now.Sub(l.logged) >= replyLogEvery
	unlogged := l.since
	if logIt {
		l.logged, l.since = now, 0
	} else {
		l.since++
	}
	c.mu.Unlock()
	c.replyCount.Add(1)
	c.replyErrs.WithLabelValues(kind).Inc()
	if lost {
		c.log.Error("redis: every round trip answered with an error reply; sharing is lost, each operation falls back to local state with this process's share until one succeeds",
			"since", since, "share", c.Share(), "err", re.msg)
	}
	if !logIt {
		return
	}
	switch kind {
	case "MOVED", "ASK", "CROSSSLOT":
		c.log.Error("redis: the server is part of a Redis Cluster, which keel does not support yet (docs/redis.md): point redis.url at a single Redis or a primary; operations fall back to local state",
			"err", re.msg)
	default:
		c.log.Warn("redis: error reply; the operation falls back to local state, Redis stays in use",
			"kind", kind, "err", re.msg, "unlogged", unlogged)
	}
}

// ok records an answer: it ends an outage, and a success (not an error
// reply) ends a run of error replies.
func (c *Client) ok(success bool) {
	c.mu.Lock()
	down, lost := c.downSince, c.lost && success
	c.downSince = time.Time{}
	if success {
		c.replySince, c.lost = time.Time{}, false
	}
	c.mu.Unlock()
	if !down.IsZero() {
		c.log.Info("redis: back; shared state in use again", "down", time.Since(down).Round(time.Millisecond))
	}
	if lost {
		c.log.Info("redis: a round trip succeeded after error replies only; shared state in use again")
	}
}

// repliesOnly reports whether every round trip since RepliesLostAfter
// before now was answered with an error reply. c.mu must be held.
func (c *Client) repliesOnly(now time.Time) bool {
	return !c.replySince.IsZero() && now.Sub(c.replySince) >= RepliesLostAfter
}

func (c *Client) fail(err error) {
	c.failures.Add(1)
	c.mu.Lock()
	first := c.downSince.IsZero()
	if first {
		c.downSince = time.Now()
	}
	c.lastErr = redactErr(err)
	guessed := c.share == 0 && len(c.counts) == 0
	c.mu.Unlock()
	if first {
		c.episodes.Add(1)
		if guessed {
			c.log.Warn("redis: unreachable; each limit falls back to this process's share, which is 1 (the whole limit, as for every replica so started): no replica was ever counted and redis.share is unset (set it, docs/redis.md)", "err", redactErr(err))
		} else {
			c.log.Warn("redis: unreachable; each limit falls back to this process's share", "share", c.Share(), "err", redactErr(err))
		}
	}
}

// Degraded reports whether the last round trip failed, or every round
// trip for RepliesLostAfter was answered with an error reply: either way
// nothing is shared.
func (c *Client) Degraded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.downSince.IsZero() || c.repliesOnly(c.now())
}

// Share returns the part of each limit this process uses while Redis
// fails: the configured share, or 1 ÷ the replicas the heartbeat counted:
// the highest count of the beats within heartbeatTTL of the last that got
// through, so that the count drops no faster than dead replicas' beats
// expire and holds while Redis fails. The first beat after a failed beat
// keeps the counts before it for another heartbeatTTL: a Redis restarted
// empty has not yet heard from the other replicas. While no beat ever got
// through the share is 1 (Stats.ShareGuessed).
func (c *Client) Share() float64 {
	if c.share > 0 {
		return c.share
	}
	return 1 / float64(c.replicas.Load())
}

// Stats is the connection's health, for metrics and the status page.
type Stats struct {
	// Degraded reports that nothing is shared: the last round trip
	// failed (an outage), or (RepliesOnly) every round trip for
	// RepliesLostAfter was answered with an error reply; DownSince is
	// when it began, LastError what failed.
	Degraded    bool
	RepliesOnly bool
	DownSince   time.Time // zero while healthy
	LastError   string
	Failures    uint64 // round trips that failed
	Episodes    uint64 // times Redis became unreachable
	Replicas    int    // alive at the last heartbeat
	Share       float64
	// ShareGuessed reports a Share of 1 that no count backs: no share is
	// configured and no beat ever got through.
	ShareGuessed bool
	// AccountConflict is, while processes of another AWS account hold
	// the prefix (Options.Account), the last four digits of their account
	// ("…1234"). The claim in Redis also holds a SHA-256 of the account,
	// which hides it from no one who can read Redis (12 digits, 8 of them
	// unknown, are a minute's search); it is not shown here.
	AccountConflict string
	// ReplyErrors counts error replies that were no outage (ReplyError);
	// LastReply is the last one's text.
	ReplyErrors uint64
	LastReply   string
}

// Stats returns the connection's health.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	s := Stats{Degraded: !c.downSince.IsZero(), DownSince: c.downSince, LastError: c.lastErr, LastReply: c.lastReply,
		ShareGuessed: len(c.counts) == 0}
	s.AccountConflict, _, _ = strings.Cut(c.conflict, ":")
	if !s.Degraded && c.repliesOnly(c.now()) {
		s.Degraded, s.RepliesOnly, s.DownSince = true, true, c.replySince
		s.LastError = "error replies only: " + c.lastReply
	}
	c.mu.Unlock()
	s.ReplyErrors = c.replyCount.Load()
	s.ShareGuessed = s.ShareGuessed && c.share == 0
	s.Failures, s.Episodes = c.failures.Load(), c.episodes.Load()
	s.Replicas, s.Share = int(c.replicas.Load()), c.Share()
	return s
}

// beatScript adds this process to the heartbeat set with an expiry from
// Redis's clock, drops the expired, and counts the rest.
var beatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[1])
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
`)

func (c *Client) beat(ctx context.Context) error { return c.Do(ctx, c.beatOnce) }

func (c *Client) beatOnce(ctx context.Context, rdb *redis.Client) error {
	n, err := beatScript.Run(ctx, rdb, []string{c.Key("replicas", "")}, c.id, heartbeatTTL.Milliseconds()).Int64()
	c.counted(max(n, 1), err)
	return err
}

// counted records a beat's count n, or its failure err.
func (c *Client) counted(n int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.beatDown = true
		return
	}
	now := c.now()
	if c.beatDown {
		// The first beat after a failed one: Redis may have restarted
		// empty (see Share). Other operations' failures say nothing of
		// the set, and do not hold the count.
		for i := range c.counts {
			c.counts[i].at = now
		}
	}
	c.beatDown = false
	c.counts = append(c.counts, count{n: n, at: now})
	kept := c.counts[:0]
	for _, k := range c.counts {
		if now.Sub(k.at) < heartbeatTTL {
			kept = append(kept, k)
			n = max(n, k.n)
		}
	}
	c.counts = kept
	c.replicas.Store(n)
}

func (c *Client) heartbeat() {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if c.beat(context.Background()) == nil {
				c.claim(context.Background())
			}
		}
	}
}

// Collectors returns the connection's Prometheus metrics: keel_redis_up
// (1 while shared state is in use), keel_redis_failures_total,
// keel_redis_episodes_total, keel_redis_replicas, keel_redis_share and
// keel_redis_reply_errors_total{kind}.
func (c *Client) Collectors() []prometheus.Collector {
	up := func() float64 {
		if c.Degraded() {
			return 0
		}
		return 1
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keel_redis_up",
			Help: "1 while keel's shared state in Redis answers, 0 while this process falls back to its share of each limit (Redis unreachable, or answering every round trip with an error reply)."}, up),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keel_redis_failures_total",
			Help: "Redis round trips that failed or timed out."}, func() float64 { return float64(c.failures.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keel_redis_episodes_total",
			Help: "Times Redis became unreachable (each a fallback to local state)."}, func() float64 { return float64(c.episodes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keel_redis_replicas",
			Help: "keel processes seen alive through the heartbeat set at the last beat."}, func() float64 { return float64(c.replicas.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keel_redis_share",
			Help: "Part of each limit this process uses while Redis is unreachable."}, c.Share),
		c.replyErrs,
	}
}
