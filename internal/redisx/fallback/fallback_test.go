package fallback_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/fallback"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

func TestGate(t *testing.T) {
	srv := redistest.Start(t)
	c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	clk := clock.NewFake(time.Now())
	g := fallback.New(c, clk)
	sent := 0
	ping := func(ctx context.Context, rdb *redis.Client) error { return rdb.Ping(ctx).Err() }
	wrongType := func(ctx context.Context, rdb *redis.Client) error {
		rdb.Set(ctx, "s", "x", 0)
		return rdb.HGet(ctx, "s", "f").Err()
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancelExpired()
	for _, step := range []struct {
		name     string
		do       func()
		ctx      context.Context
		op       func(ctx context.Context, rdb *redis.Client) error // nil: ping
		wantErr  error                                              // nil: none
		wantSent bool
		wantDown bool
	}{
		{name: "up", wantSent: true},
		{name: "an error reply is an answer", op: wrongType, wantErr: redisx.ErrReply, wantSent: true},
		{name: "a caller's cancel says nothing of Redis", ctx: canceled, wantErr: redisx.ErrCallerDone},
		{name: "a caller's passed deadline says nothing of Redis", ctx: expired, wantErr: redisx.ErrCallerDone},
		{name: "down: the first pays", do: srv.Kill, wantErr: redisx.ErrUnavailable, wantSent: true, wantDown: true},
		{name: "down: the next skip", wantErr: fallback.ErrSkipped, wantDown: true},
		{name: "back, but not yet tried", do: func() { srv.Restart(); clk.Advance(fallback.RetryEvery - 1) }, wantErr: fallback.ErrSkipped, wantDown: true},
		{name: "tried again after RetryEvery: an error reply opens", do: func() { clk.Advance(1) }, op: wrongType, wantErr: redisx.ErrReply, wantSent: true},
		{name: "up again", wantSent: true},
	} {
		if step.do != nil {
			step.do()
		}
		ctx := step.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		op := step.op
		if op == nil {
			op = ping
		}
		before := sent
		err := g.Do(ctx, func(ctx context.Context, rdb *redis.Client) error {
			sent++
			return op(ctx, rdb)
		})
		if step.wantErr == nil && err != nil || step.wantErr != nil && !errors.Is(err, step.wantErr) {
			t.Errorf("%s: Do = %v, want %v", step.name, err, step.wantErr)
		}
		if got := sent > before; got != step.wantSent {
			t.Errorf("%s: round trip sent %v, want %v", step.name, got, step.wantSent)
		}
		if g.Down() != step.wantDown {
			t.Errorf("%s: Down() = %v, want %v", step.name, g.Down(), step.wantDown)
		}
	}
}
