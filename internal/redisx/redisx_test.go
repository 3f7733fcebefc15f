package redisx_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

// syncBuf is a log sink safe for the heartbeat's goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func open(t *testing.T, o redisx.Options) *redisx.Client {
	t.Helper()
	c, err := redisx.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOpenBadInput(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPassword("right-pw"))
	// A user that may not run scripts, which every operation is.
	if err := srv.Client().Do(context.Background(), "ACL", "SETUSER", "noscript", "on", ">right-pw", "~*", "+@all", "-@scripting").Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    redisx.Options
		want string
	}{
		{"not a url", redisx.Options{URL: "http://:secret-pw@host:6379"}, "redis.url: not a Redis URL"},
		{"wrong password", redisx.Options{URL: "redis://:wrong-pw@" + srv.Addr}, "redis.url: Redis refused the credentials"},
		{"no password", redisx.Options{URL: "redis://" + srv.Addr}, "redis.url: Redis refused the credentials"},
		{"a user without scripts", redisx.Options{URL: "redis://noscript:right-pw@" + srv.Addr}, "redis.url: the Redis user lacks a permission keel needs"},
		{"tls on plain", redisx.Options{URL: "redis://" + srv.Addr, TLS: config.RedisTLS{CA: "ca.pem"}}, "redis.tls"},
		{"missing ca", redisx.Options{URL: "rediss://" + srv.Addr, TLS: config.RedisTLS{CA: "/nonexistent/ca.pem"}}, "redis.tls.ca"},
		{"brace prefix", redisx.Options{URL: srv.URL, Prefix: "a{b"}, "redis.prefix"},
		{"share", redisx.Options{URL: srv.URL, Share: 2}, "redis.share"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := redisx.Open(context.Background(), tc.o)
			if err == nil {
				c.Close()
				t.Fatalf("Open: no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want %q", err, tc.want)
			}
			for _, pw := range []string{"secret-pw", "wrong-pw", "right-pw"} {
				if strings.Contains(err.Error(), pw) {
					t.Errorf("Open's error shows the password: %v", err)
				}
			}
		})
	}
}

func TestKeys(t *testing.T) {
	srv := redistest.Start(t)
	c := open(t, redisx.Options{URL: srv.URL, Prefix: "app:"})
	for _, tc := range []struct{ kind, target, want string }{
		{"bucket", "us.anthropic.claude-sonnet-4-6@us-east-1", "app:v1:bucket:{us.anthropic.claude-sonnet-4-6@us-east-1}"},
		{"replicas", "", "app:v1:replicas"},
		{"bucket", "odd{name}", "app:v1:bucket:{odd(name)}"},
	} {
		if got := c.Key(tc.kind, tc.target); got != tc.want {
			t.Errorf("Key(%q, %q) = %q, want %q", tc.kind, tc.target, got, tc.want)
		}
	}
}

func TestHeartbeatCountsReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, redisx.Options{URL: srv.URL, ID: "a"})
	b := open(t, redisx.Options{URL: srv.URL, ID: "b"})
	if got := b.Stats().Replicas; got != 2 {
		t.Errorf("b sees %d replicas, want 2", got)
	}
	if got := b.Share(); got != 0.5 {
		t.Errorf("b's share %g, want 0.5", got)
	}
	configured := open(t, redisx.Options{URL: srv.URL, ID: "c", Share: 0.25})
	if got := configured.Share(); got != 0.25 {
		t.Errorf("configured share %g, want 0.25", got)
	}
	a.Close()
	n, err := srv.Client().ZCard(context.Background(), "keel:v1:replicas").Result()
	if err != nil || n != 2 {
		t.Errorf("after a closed, the set holds %d (%v), want 2", n, err)
	}
}

func TestEpisodes(t *testing.T) {
	srv := redistest.Start(t)
	var logs syncBuf
	c := open(t, redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ping := func() error {
		return c.Do(context.Background(), func(ctx context.Context, rdb *redis.Client) error { return rdb.Ping(ctx).Err() })
	}
	if err := ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	srv.Kill()
	for range 3 {
		if err := ping(); !errors.Is(err, redisx.ErrUnavailable) {
			t.Fatalf("ping with Redis down: %v, want ErrUnavailable", err)
		}
	}
	if s := c.Stats(); !s.Degraded || s.Episodes != 1 || s.Failures < 3 || s.LastError == "" {
		t.Errorf("down: %+v, want degraded, 1 episode, ≥ 3 failures and an error", s)
	}
	srv.Restart()
	if err := ping(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if s := c.Stats(); s.Degraded {
		t.Errorf("after restart still degraded: %+v", s)
	}
	out := logs.String()
	if strings.Count(out, "redis: unreachable") != 1 || strings.Count(out, "redis: back") != 1 {
		t.Errorf("want one line at each end of the episode, got:\n%s", out)
	}
}

func TestOpenUnreachableStartsDegraded(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	c := open(t, redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(&syncBuf{}, nil))})
	if !c.Degraded() {
		t.Errorf("Open with Redis down: not degraded")
	}
}

func TestCallerEndIsNoEpisode(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		name       string
		timeout    time.Duration // the Client's
		ctx        func() (context.Context, context.CancelFunc)
		cancelIn   bool // the caller cancels during the round trip
		wantSent   bool
		wantCaller bool // ErrCallerDone, no failure counted
	}{
		{name: "cancelled before: no round trip", timeout: time.Hour,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			}, wantCaller: true},
		{name: "deadline passed before: no round trip", timeout: time.Hour,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
			}, wantCaller: true},
		{name: "cancelled during the round trip", timeout: time.Hour,
			ctx:      func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			cancelIn: true, wantSent: true, wantCaller: true},
		{name: "the caller's deadline before the Client's timeout", timeout: time.Hour,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 5*time.Millisecond)
			}, wantSent: true, wantCaller: true},
		{name: "the Client's timeout, no caller deadline", timeout: 5 * time.Millisecond,
			ctx:      func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			wantSent: true},
		{name: "the Client's timeout before the caller's deadline", timeout: 5 * time.Millisecond,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Hour)
			}, wantSent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No heartbeat during the row, and no episode before Do: with
			// a 5 ms timeout, Open's own beat may time out on a loaded
			// machine, and Do's failure would then continue that episode
			// instead of starting one. A Do that succeeds ends it.
			defer redisx.SetBeatEvery(time.Hour)()
			c := open(t, redisx.Options{URL: srv.URL, Timeout: tt.timeout, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err := c.Do(context.Background(), func(context.Context, *redis.Client) error { return nil }); err != nil || c.Degraded() {
				t.Fatalf("a Do that succeeds: %v, degraded %v", err, c.Degraded())
			}
			before := c.Stats()
			ctx, cancel := tt.ctx()
			defer cancel()
			sent := false
			err := c.Do(ctx, func(ctx context.Context, _ *redis.Client) error {
				sent = true // a round trip that Redis does not answer
				if tt.cancelIn {
					cancel()
				}
				<-ctx.Done()
				return ctx.Err()
			})
			if sent != tt.wantSent {
				t.Errorf("round trip sent %v, want %v", sent, tt.wantSent)
			}
			if !errors.Is(err, redisx.ErrUnavailable) || errors.Is(err, redisx.ErrCallerDone) != tt.wantCaller {
				t.Errorf("Do = %v, want ErrUnavailable, ErrCallerDone %v", err, tt.wantCaller)
			}
			s := c.Stats()
			if failed := s.Failures > before.Failures && s.Episodes > before.Episodes; failed == tt.wantCaller {
				t.Errorf("failure and episode counted %v, want %v: %+v", failed, !tt.wantCaller, s)
			}
		})
	}
}

// fakeReply is an error reply made up by a test, for the replies a single
// redis-server does not give (LOADING, MOVED).
type fakeReply string

func (e fakeReply) Error() string { return string(e) }
func (fakeReply) RedisError()     {}

func TestErrorReplies(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	must := func(t *testing.T, args ...any) {
		t.Helper()
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	dead := redistest.Start(t)
	dead.Kill()
	deadHost, deadPort, _ := strings.Cut(dead.Addr, ":")
	set := func(ctx context.Context, rdb *redis.Client) error { return rdb.Set(ctx, "k", "v", 0).Err() }
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T) // and its undoing, by t.Cleanup
		op     func(ctx context.Context, rdb *redis.Client) error
		kind   string // "": an outage
		reset  bool   // the keys may be to blame
		logged string
	}{
		{name: "script runtime error", kind: "ERR", reset: true, logged: "error reply",
			setup: func(t *testing.T) { must(t, "HSET", "h", "f", "1.5") },
			op: func(ctx context.Context, rdb *redis.Client) error {
				return rdb.Eval(ctx, "return redis.call('HINCRBY', KEYS[1], 'f', 1)", []string{"h"}).Err()
			}},
		{name: "wrong type", kind: "WRONGTYPE", reset: true, logged: "error reply",
			setup: func(t *testing.T) { must(t, "SET", "h", "x") },
			op:    func(ctx context.Context, rdb *redis.Client) error { return rdb.HGet(ctx, "h", "f").Err() }},
		{name: "out of memory", kind: "OOM", logged: "error reply",
			setup: func(t *testing.T) {
				must(t, "CONFIG", "SET", "maxmemory", "1")
				t.Cleanup(func() { must(t, "CONFIG", "SET", "maxmemory", "0") })
			},
			op: set},
		{name: "no permission", kind: "NOPERM", logged: "error reply",
			setup: func(t *testing.T) {
				must(t, "ACL", "SETUSER", "default", "-set")
				t.Cleanup(func() { must(t, "ACL", "SETUSER", "default", "+@all") })
			},
			op: set},
		{name: "cluster", kind: "MOVED", logged: "Redis Cluster, which keel does not support yet",
			op: func(context.Context, *redis.Client) error { return fakeReply("MOVED 3999 127.0.0.1:6381") }},
		{name: "read only replica",
			setup: func(t *testing.T) {
				must(t, "REPLICAOF", deadHost, deadPort)
				t.Cleanup(func() { must(t, "REPLICAOF", "NO", "ONE") })
			},
			op: set},
		{name: "primary down",
			setup: func(t *testing.T) {
				must(t, "CONFIG", "SET", "replica-serve-stale-data", "no")
				must(t, "REPLICAOF", deadHost, deadPort)
				t.Cleanup(func() {
					must(t, "REPLICAOF", "NO", "ONE")
					must(t, "CONFIG", "SET", "replica-serve-stale-data", "yes")
				})
			},
			op: func(ctx context.Context, rdb *redis.Client) error { return rdb.Get(ctx, "k").Err() }},
		{name: "password changed",
			op: func(context.Context, *redis.Client) error {
				return fakeReply("NOAUTH Authentication required.")
			}},
		{name: "loading",
			op: func(context.Context, *redis.Client) error {
				return fakeReply("LOADING Redis is loading the dataset in memory")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "FLUSHALL")
			var logs syncBuf
			c := open(t, redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if tc.setup != nil {
				tc.setup(t)
			}
			err := c.Do(ctx, tc.op)
			if !errors.Is(err, redisx.ErrUnavailable) {
				t.Fatalf("Do: %v, want an error matching ErrUnavailable", err)
			}
			var re *redisx.ReplyError
			s := c.Stats()
			if tc.kind == "" {
				if errors.As(err, &re) || errors.Is(err, redisx.ErrReply) {
					t.Errorf("Do: %v is a reply error, want an outage", err)
				}
				if !s.Degraded || s.Episodes != 1 || s.ReplyErrors != 0 {
					t.Errorf("Stats after an outage: %+v, want degraded, 1 episode, no reply error", s)
				}
				return
			}
			if !errors.As(err, &re) || !errors.Is(err, redisx.ErrReply) || re.Kind != tc.kind {
				t.Fatalf("Do: %v, want a reply error of kind %s", err, tc.kind)
			}
			if s.Degraded || s.Episodes != 0 || s.Failures != 0 || s.ReplyErrors != 1 || s.LastReply == "" {
				t.Errorf("Stats after an error reply: %+v, want healthy and 1 reply error", s)
			}
			if got := c.ResetGarbage(ctx, err, "h"); got != tc.reset {
				t.Errorf("ResetGarbage = %v, want %v", got, tc.reset)
			}
			if n := admin.Exists(ctx, "h").Val(); tc.reset && n != 0 {
				t.Errorf("the key to blame is still there")
			}
			if !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log %q, want %q", logs.String(), tc.logged)
			}
		})
	}
}

func TestReplyLogsRateLimited(t *testing.T) {
	srv := redistest.Start(t)
	var logs syncBuf
	c := open(t, redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c.SetNow(func() time.Time { return now })
	reply := func(msg string) {
		c.Do(context.Background(), func(context.Context, *redis.Client) error { return fakeReply(msg) })
	}
	for range 3 {
		reply("OOM command not allowed")
	}
	reply("NOPERM no permissions")
	if got := strings.Count(logs.String(), "error reply"); got != 2 {
		t.Errorf("%d lines for 3 OOM and 1 NOPERM, want 2 (one per kind):\n%s", got, logs.String())
	}
	// A success between: the replies are no lasting refusal (see
	// TestRepliesOnlyLoseSharing).
	if err := c.Do(context.Background(), func(ctx context.Context, rdb *redis.Client) error { return rdb.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	reply("OOM command not allowed")
	if got := strings.Count(logs.String(), "kind=OOM"); got != 2 || !strings.Contains(logs.String(), "unlogged=2") {
		t.Errorf("a minute on: %d OOM lines, want 2, the second with unlogged=2:\n%s", got, logs.String())
	}
	if s := c.Stats(); s.ReplyErrors != 5 || s.Degraded {
		t.Errorf("Stats: %+v, want 5 reply errors, healthy", s)
	}
}

func TestOpenRefusesCluster(t *testing.T) {
	srv := redistest.Start(t, redistest.WithArgs("--cluster-enabled", "yes"))
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(&syncBuf{}, nil))})
	if err == nil {
		c.Close()
		t.Fatal("Open of a Redis Cluster node: no error")
	}
	if !strings.Contains(err.Error(), "redis.url") || !strings.Contains(err.Error(), "Redis Cluster") {
		t.Errorf("Open: %v, want an error naming redis.url and Redis Cluster", err)
	}
}

func TestGoRedisLogsAtDebug(t *testing.T) {
	var logs syncBuf
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv := redistest.Start(t)
	srv.Kill()
	c := open(t, redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(&syncBuf{}, nil))})
	c.Do(context.Background(), func(ctx context.Context, rdb *redis.Client) error { return rdb.Ping(ctx).Err() })
	c.Close()
	if out := logs.String(); !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "redis: go-redis") {
		t.Errorf("go-redis's lines did not go to slog at Debug:\n%s", out)
	}
}

func TestShareCount(t *testing.T) {
	defer redisx.SetBeatEvery(time.Hour)() // only the test's beats
	srv := redistest.Start(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := open(t, redisx.Options{URL: srv.URL, ID: "o", Logger: quiet})
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	o.SetNow(func() time.Time { return now })
	var others []*redisx.Client
	start := func() {
		for _, id := range []string{"a", "b"} {
			others = append(others, open(t, redisx.Options{URL: srv.URL, ID: id, Logger: quiet}))
		}
	}
	stop := func() {
		for _, c := range others {
			c.Close()
		}
		others = nil
	}
	for _, step := range []struct {
		name    string
		do      func()
		advance time.Duration
		down    bool // the beat fails
		want    int  // replicas counted
	}{
		{name: "three alive", do: start, want: 3},
		{name: "two gone: held while their beats could still count", do: stop, advance: time.Second, want: 3},
		{name: "two gone for a heartbeat TTL", advance: redisx.HeartbeatTTL, want: 1},
		{name: "three again", do: start, advance: time.Second, want: 3},
		{name: "Redis down: the count holds", do: srv.Kill, advance: time.Minute, down: true, want: 3},
		{name: "Redis back empty: the first beat counts 1, the count holds", do: srv.Restart, advance: time.Minute, want: 3},
		{name: "down again at once: the count holds", do: srv.Kill, advance: time.Second, down: true, want: 3},
		{name: "back again", do: srv.Restart, advance: time.Second, want: 3},
		{name: "a heartbeat TTL of beats after", advance: redisx.HeartbeatTTL, want: 1},
		{name: "three once more", do: start, advance: time.Second, want: 3},
		{name: "two gone and another operation failing: beats go on, the count drops", do: func() {
			stop()
			o.Do(context.Background(), func(context.Context, *redis.Client) error { return errors.New("i/o timeout") })
		}, advance: redisx.HeartbeatTTL, want: 1},
	} {
		if step.do != nil {
			step.do()
		}
		now = now.Add(step.advance)
		err := o.Beat(context.Background())
		if (err != nil) != step.down {
			t.Fatalf("%s: beat: %v, want failed %v", step.name, err, step.down)
		}
		if s := o.Stats(); s.Replicas != step.want || s.Share != 1/float64(step.want) || s.ShareGuessed {
			t.Errorf("%s: %d replicas, share %g, guessed %v; want %d, 1/%d, not guessed", step.name, s.Replicas, s.Share, s.ShareGuessed, step.want, step.want)
		}
	}
}

func TestShareNeverCounted(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	for _, tc := range []struct {
		name        string
		share       float64
		wantShare   float64
		wantGuessed bool
		wantLog     string
	}{
		{"no share configured", 0, 1, true, "redis.share is unset"},
		{"a share configured", 0.25, 0.25, false, "share=0.25"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuf
			c := open(t, redisx.Options{URL: srv.URL, Share: tc.share, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if s := c.Stats(); s.Share != tc.wantShare || s.ShareGuessed != tc.wantGuessed {
				t.Errorf("started with Redis down: share %g, guessed %v; want %g, %v", s.Share, s.ShareGuessed, tc.wantShare, tc.wantGuessed)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log %q, want %q", logs.String(), tc.wantLog)
			}
		})
	}
}

func TestAccountClaim(t *testing.T) {
	srv := redistest.Start(t)
	account := func(id string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return id, nil }
	}
	for _, tc := range []struct {
		name         string
		first, later redisx.Options
		wantConflict bool
	}{
		{"one account", redisx.Options{Account: account("111111111111")}, redisx.Options{Account: account("111111111111")}, false},
		{"two accounts, one prefix", redisx.Options{Account: account("111111111111")}, redisx.Options{Account: account("222222222222")}, true},
		{"two accounts, two prefixes", redisx.Options{Account: account("111111111111")},
			redisx.Options{Prefix: "other:", Account: account("222222222222")}, false},
		{"an account unknown", redisx.Options{Account: account("111111111111")}, redisx.Options{Account: account("")}, false},
		{"credentials failing", redisx.Options{Account: account("111111111111")},
			redisx.Options{Account: func(context.Context) (string, error) { return "", errors.New("no credentials") }}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Client().FlushAll(context.Background())
			var logs syncBuf
			var cs []*redisx.Client
			for _, o := range []redisx.Options{tc.first, tc.later} {
				o.URL, o.Logger = srv.URL, slog.New(slog.NewTextHandler(&logs, nil))
				c := open(t, o)
				c.WaitAccount()
				cs = append(cs, c)
			}
			cs[0].Claim(context.Background()) // a heartbeat of the first
			got := cs[1].Stats().AccountConflict
			if (got != "") != tc.wantConflict {
				t.Errorf("the later process's AccountConflict %q, want a conflict %v", got, tc.wantConflict)
			}
			if tc.wantConflict && (got != "…1111" || !strings.Contains(logs.String(), "give each account its own redis.prefix")) {
				t.Errorf("conflict %q and log %q, want the other account's last four digits alone and a line naming redis.prefix", got, logs.String())
			}
			if strings.Contains(logs.String(), "111111111111") || strings.Contains(logs.String(), "222222222222") {
				t.Errorf("an account in full in the log: %s", logs.String())
			}
			if c := cs[0].Stats().AccountConflict; c != "" {
				t.Errorf("the first process, which holds the prefix, sees a conflict %q", c)
			}
		})
	}
}

func TestRepliesOnlyLoseSharing(t *testing.T) {
	ctx := context.Background()
	write := func(ctx context.Context, rdb *redis.Client) error {
		return rdb.Eval(ctx, "return redis.call('SET', KEYS[1], 'x')", []string{"k"}).Err()
	}
	for _, tc := range []struct {
		name string
		opts []redistest.Option
		// setup returns the Client's URL; refuse, run once the Client is
		// open, makes Redis refuse op.
		setup   func(t *testing.T, srv *redistest.Server) string
		refuse  func(t *testing.T, srv *redistest.Server)
		op      func(ctx context.Context, rdb *redis.Client) error
		between func(ctx context.Context, rdb *redis.Client) error // a round trip between two ops; nil: none
		heal    func(t *testing.T, srv *redistest.Server)
		kind    string
		wantOp  bool // the op succeeds after heal
		wantHit bool // sharing is reported lost
	}{
		{name: "OOM at maxmemory with noeviction",
			opts:  []redistest.Option{redistest.WithArgs("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")},
			setup: func(t *testing.T, srv *redistest.Server) string { return srv.URL },
			refuse: func(t *testing.T, srv *redistest.Server) {
				// An empty server may be past 1 MB already, and refuse this.
				err := srv.Client().Set(ctx, "fill", strings.Repeat("x", 2<<20), 0).Err()
				if err != nil && !strings.HasPrefix(err.Error(), "OOM") {
					t.Fatal(err)
				}
			},
			op: write,
			heal: func(t *testing.T, srv *redistest.Server) {
				if err := srv.Client().ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
					t.Fatal(err)
				}
			},
			kind: "OOM", wantHit: true},
		{name: "NOPERM: a user that may not run scripts",
			setup: func(t *testing.T, srv *redistest.Server) string {
				if err := srv.Client().Do(ctx, "ACL", "SETUSER", "keel", "on", ">pw", "~*", "+@all").Err(); err != nil {
					t.Fatal(err)
				}
				return "redis://keel:pw@" + srv.Addr
			},
			refuse: func(t *testing.T, srv *redistest.Server) {
				if err := srv.Client().Do(ctx, "ACL", "SETUSER", "keel", "-@scripting").Err(); err != nil {
					t.Fatal(err)
				}
			},
			op: write,
			heal: func(t *testing.T, srv *redistest.Server) {
				if err := srv.Client().Do(ctx, "ACL", "SETUSER", "keel", "+@scripting").Err(); err != nil {
					t.Fatal(err)
				}
			},
			kind: "NOPERM", wantHit: true},
		{name: "one key's bad content, other round trips answered",
			setup: func(t *testing.T, srv *redistest.Server) string {
				if err := srv.Client().Set(ctx, "s", "x", 0).Err(); err != nil {
					t.Fatal(err)
				}
				return srv.URL
			},
			op:      func(ctx context.Context, rdb *redis.Client) error { return rdb.HGet(ctx, "s", "f").Err() },
			between: func(ctx context.Context, rdb *redis.Client) error { return rdb.Ping(ctx).Err() },
			kind:    "WRONGTYPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, tc.opts...)
			url := tc.setup(t, srv)
			var logs syncBuf
			c := open(t, redisx.Options{URL: url, Timeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if tc.refuse != nil {
				tc.refuse(t, srv)
			}
			var mu sync.Mutex
			now := time.Now()
			c.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			step := func() {
				t.Helper()
				var re *redisx.ReplyError
				if err := c.Do(ctx, tc.op); !errors.As(err, &re) || re.Kind != tc.kind {
					t.Fatalf("Do = %v, want a %s reply", err, tc.kind)
				}
				if tc.between != nil {
					if err := c.Do(ctx, tc.between); err != nil {
						t.Fatal(err)
					}
				}
			}
			step()
			advance(redisx.RepliesLostAfter - time.Millisecond)
			step()
			if s := c.Stats(); s.Degraded {
				t.Fatalf("degraded before %v of error replies only: %+v", redisx.RepliesLostAfter, s)
			}
			advance(time.Millisecond)
			step()
			s := c.Stats()
			if s.Degraded != tc.wantHit || s.RepliesOnly != tc.wantHit || c.Degraded() != tc.wantHit {
				t.Errorf("after %v: Degraded %v (Degraded() %v), RepliesOnly %v, want %v: %+v",
					redisx.RepliesLostAfter, s.Degraded, c.Degraded(), s.RepliesOnly, tc.wantHit, s)
			}
			if tc.wantHit && !strings.Contains(s.LastError, tc.kind) {
				t.Errorf("LastError %q, want it to name %s", s.LastError, tc.kind)
			}
			if got := strings.Count(logs.String(), "sharing is lost"); got != map[bool]int{true: 1}[tc.wantHit] {
				t.Errorf("%d log lines saying sharing is lost, want one if lost:\n%s", got, logs.String())
			}
			if s.Episodes != 0 {
				t.Errorf("%d episodes, want 0: Redis answered", s.Episodes)
			}
			if tc.heal == nil {
				return
			}
			tc.heal(t, srv)
			if err := c.Do(ctx, tc.op); err != nil {
				t.Fatalf("Do after heal: %v", err)
			}
			if s := c.Stats(); s.Degraded {
				t.Errorf("still degraded after a success: %+v", s)
			}
		})
	}
}
