package redisx_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

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
	for _, tc := range []struct {
		name string
		o    redisx.Options
		want string
	}{
		{"not a url", redisx.Options{URL: "http://:secret-pw@host:6379"}, "redis.url: not a Redis URL"},
		{"wrong password", redisx.Options{URL: "redis://:wrong-pw@" + srv.Addr}, "redis.url: Redis refused the credentials"},
		{"no password", redisx.Options{URL: "redis://" + srv.Addr}, "redis.url: Redis refused the credentials"},
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

func TestCallerCancelIsNoEpisode(t *testing.T) {
	srv := redistest.Start(t)
	c := open(t, redisx.Options{URL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Do(ctx, func(ctx context.Context, rdb *redis.Client) error { return rdb.Ping(ctx).Err() })
	if !errors.Is(err, redisx.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context: %v, want ErrUnavailable and context.Canceled", err)
	}
	if s := c.Stats(); s.Degraded || s.Failures != 0 || s.Episodes != 0 {
		t.Errorf("a caller's cancel counted against Redis: %+v", s)
	}
}
