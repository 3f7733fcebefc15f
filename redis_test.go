package keel

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

func TestRedisOptions(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPassword("pw-right"))
	t.Run("shared", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		k, err := New(aws.Config{}, Options{Redis: RedisOptions{URL: srv.URL, Prefix: "test-keel:"}, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		s, ok := k.Shared()
		if !ok || s.Degraded || s.Replicas != 1 || s.Share != 1 {
			t.Errorf("Shared() = %+v, %v; want healthy, 1 replica, share 1", s, ok)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, mf := range mfs {
			names[mf.GetName()] = true
		}
		for _, n := range []string{"keel_redis_up", "keel_redis_failures_total", "keel_redis_replicas"} {
			if !names[n] {
				t.Errorf("metric %s not registered", n)
			}
		}
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := k.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("none", func(t *testing.T) {
		k, err := New(aws.Config{}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := k.Shared(); ok {
			t.Error("Shared() ok without Options.Redis")
		}
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for _, tc := range []struct{ name, url, want string }{
		{"wrong password", strings.Replace(srv.URL, "pw-right", "pw-wrong", 1), "keel: Options.Redis.URL: Redis refused the credentials"},
		{"not redis", "redis://" + srv.Addr + "/x", "keel: Options.Redis.URL: not a Redis URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := New(aws.Config{}, Options{Redis: RedisOptions{URL: tc.url}})
			if err == nil {
				k.Close()
				t.Fatalf("New: no error, want %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "pw-") {
				t.Errorf("New: %v\nwant prefix %q and no password", err, tc.want)
			}
		})
	}
}

// TestRedisSharesBreakers: two Keels on one Redis, in front of a model
// that always fails: once the second has seen a failure too (the fleet's
// breaker opens on the failures of two processes, redisbreaker.Quorum),
// the breaker that calls through the first open is open in the second,
// which then sends nothing.
func TestRedisSharesBreakers(t *testing.T) {
	srv := redistest.Start(t)
	var sent atomic.Int64
	emu, err := emulator.Start(emulator.Options{Seed: 7, Planner: func(fault.Request) fault.Plan {
		sent.Add(1)
		return fault.Plan{Error: catalog.CodeInternalServer}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDKEEL", "keel-secret", "")}
	opts := Options{Endpoint: emu.URL, Redis: RedisOptions{URL: srv.URL, Prefix: "breakers-test:", Timeout: 5 * time.Second},
		Retry:   RetryOptions{MaxAttempts: 1},
		Breaker: BreakerOptions{ConsecutiveFailures: 3, Cooldown: time.Hour},
		Quotas:  QuotaOptions{Disabled: true}}
	clients := make([]*bedrockruntime.Client, 2)
	for i := range clients {
		k, err := New(cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		clients[i] = bedrockruntime.NewFromConfig(cfg, k.ClientOptions)
	}
	if _, err := clients[1].Converse(context.Background(), converseInput(haiku)); err == nil {
		t.Fatal("a call to a failing model succeeded")
	}
	for range 3 {
		if _, err := clients[0].Converse(context.Background(), converseInput(haiku)); err == nil {
			t.Fatal("a call to a failing model succeeded")
		}
	}
	before := sent.Load()
	_, err = clients[1].Converse(context.Background(), converseInput(haiku))
	if !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("the other Keel's call: %v, want ErrCircuitOpen", err)
	}
	if n := sent.Load() - before; n != 0 {
		t.Errorf("the other Keel sent %d requests past an open breaker", n)
	}
}
