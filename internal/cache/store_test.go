package cache_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/cache/cachetest"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/redisx"
	"github.com/keel-run/keel/internal/redisx/redistest"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestMemoryConformance(t *testing.T) {
	clk := clock.NewFake(epoch)
	cachetest.Run(t, cachetest.Harness{
		Open: func(t *testing.T, max int64) cache.Store {
			s := cache.NewMemory(max, clk)
			t.Cleanup(func() { s.Close() })
			return s
		},
		Advance: clk.Advance,
	})
}

func TestSQLiteConformance(t *testing.T) {
	clk := clock.NewFake(epoch)
	cachetest.Run(t, cachetest.Harness{
		Open: func(t *testing.T, max int64) cache.Store {
			s, err := cache.OpenSQLite(filepath.Join(t.TempDir(), "cache.db"), max, clk, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		Advance: clk.Advance,
	})
}

func TestRedisConformance(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	n := 0
	var prefix string
	cachetest.Run(t, cachetest.Harness{
		Open: func(t *testing.T, _ int64) cache.Store {
			n++
			prefix = "t" + strings.Repeat("x", n) + ":"
			c, err := redisx.Open(context.Background(), redisx.Options{URL: srv.URL, Prefix: prefix, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return cache.NewRedis(c)
		},
		// Redis keeps its own time: moving it forward is shortening every
		// key's TTL by d (and deleting the keys it runs out).
		Advance: func(d time.Duration) {
			ctx := context.Background()
			keys, err := rdb.Keys(ctx, prefix+"*cache:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				left := rdb.PTTL(ctx, k).Val()
				if left <= d {
					rdb.Del(ctx, k)
				} else {
					rdb.PExpire(ctx, k, left-d)
				}
			}
		},
		Unbounded: true,
	})
}

func TestSQLiteSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	clk := clock.NewFake(epoch)
	s, err := cache.OpenSQLite(path, 1<<20, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(context.Background(), "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v (%v); want 0600: it holds prompts and replies", fi.Mode().Perm(), err)
	}
	s, err = cache.OpenSQLite(path, 1<<20, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, ok, err := s.Get(context.Background(), "k"); !ok || string(v) != "v" || err != nil {
		t.Errorf("after a restart Get = %q, %v, %v", v, ok, err)
	}
}

func TestSQLiteCorruptFileStartsEmpty(t *testing.T) {
	for name, content := range map[string][]byte{
		"not sqlite":     []byte(strings.Repeat("this is not a database file\n", 200)),
		"another schema": nil, // made below: a SQLite file with a table of its own
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.db")
			if content != nil {
				if err := os.WriteFile(path, content, 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				other, err := cache.OpenSQLite(path, 1<<20, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				other.Close()
				otherDB(t, path)
			}
			var logs strings.Builder
			log := slog.New(slog.NewTextHandler(&logs, nil))
			s, err := cache.OpenSQLite(path, 1<<20, nil, log)
			if err != nil {
				t.Fatalf("a bad file must start the cache empty, got %v", err)
			}
			defer s.Close()
			if _, ok, err := s.Get(context.Background(), "k"); ok || err != nil {
				t.Errorf("Get = %v, %v; want an empty cache", ok, err)
			}
			if strings.Count(logs.String(), "moved aside") != 1 {
				t.Errorf("logs %q; want one line saying the file was moved aside", logs.String())
			}
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Errorf("the bad file was not kept aside: %v", err)
			}
		})
	}
}
