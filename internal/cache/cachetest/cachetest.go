// Package cachetest is the conformance suite of cache.Store: every store
// keel has (memory, SQLite, Redis) passes the same Run.
package cachetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/cache"
)

// Harness opens a store for one test.
type Harness struct {
	// Open returns a new, empty store holding at most maxBytes (stores
	// bounded elsewhere ignore it), closed by the test's cleanup.
	Open func(t *testing.T, maxBytes int64) cache.Store
	// Advance moves the store's time forward by d, so that TTLs run out.
	Advance func(d time.Duration)
	// Unbounded marks a store whose bound is not its own (Redis's
	// maxmemory): the bound's cases are skipped, and Stats need not count.
	Unbounded bool
}

// Run runs the suite on the stores h opens.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	const big = 1 << 20
	t.Run("get of a missing key", func(t *testing.T) {
		s := h.Open(t, big)
		if v, ok, err := s.Get(ctx, "nope"); ok || err != nil || v != nil {
			t.Errorf("Get = %q, %v, %v; want nothing", v, ok, err)
		}
	})
	t.Run("set, get and replace, byte-exact", func(t *testing.T) {
		s := h.Open(t, big)
		v1 := []byte{0, 1, 2, 0xff, 'a', 0}
		must(t, s.Set(ctx, "k", v1, time.Hour))
		get(t, s, "k", v1)
		v2 := bytes.Repeat([]byte("xy"), 1000)
		must(t, s.Set(ctx, "k", v2, time.Hour))
		get(t, s, "k", v2)
		get(t, s, "other", nil)
	})
	t.Run("ttl", func(t *testing.T) {
		s := h.Open(t, big)
		must(t, s.Set(ctx, "short", []byte("s"), 10*time.Second))
		must(t, s.Set(ctx, "long", []byte("l"), time.Hour))
		h.Advance(9 * time.Second)
		get(t, s, "short", []byte("s"))
		h.Advance(time.Second)
		get(t, s, "short", nil)
		get(t, s, "long", []byte("l"))
		// A zero TTL stores nothing.
		must(t, s.Set(ctx, "zero", []byte("z"), 0))
		get(t, s, "zero", nil)
	})
	t.Run("purge", func(t *testing.T) {
		s := h.Open(t, big)
		for i := range 10 {
			must(t, s.Set(ctx, fmt.Sprint("k", i), []byte("v"), time.Hour))
		}
		must(t, s.Purge(ctx))
		for i := range 10 {
			get(t, s, fmt.Sprint("k", i), nil)
		}
		if st, err := s.Stats(ctx); err != nil || !h.Unbounded && (st.Entries != 0 || st.Bytes != 0) {
			t.Errorf("after Purge, Stats = %+v, %v", st, err)
		}
	})
	t.Run("bounded by bytes", func(t *testing.T) {
		if h.Unbounded {
			t.Skip("the store's bound is not its own")
		}
		const max = 1000
		s := h.Open(t, max)
		val := bytes.Repeat([]byte("v"), 300)
		for i := range 5 {
			must(t, s.Set(ctx, fmt.Sprint("k", i), val, time.Duration(i+1)*time.Hour))
		}
		st, err := s.Stats(ctx)
		must(t, err)
		if st.Bytes > max || st.Entries != 3 || st.Evictions != 2 {
			t.Errorf("Stats = %+v; want 3 entries of 300 bytes and 2 evictions", st)
		}
		get(t, s, "k4", val) // the newest is kept
		get(t, s, "k0", nil) // the oldest went first
		// A value larger than the bound is not stored, and evicts nothing.
		must(t, s.Set(ctx, "huge", bytes.Repeat([]byte("h"), max+1), time.Hour))
		get(t, s, "huge", nil)
		get(t, s, "k4", val)
	})
	t.Run("concurrent use", func(t *testing.T) {
		s := h.Open(t, big)
		var wg sync.WaitGroup
		errs := make(chan error, 8*50)
		for w := range 8 {
			wg.Go(func() {
				for i := range 50 {
					k := fmt.Sprint("k", (w*50+i)%40)
					if err := s.Set(ctx, k, []byte(k), time.Hour); err != nil {
						errs <- err
					}
					if v, ok, err := s.Get(ctx, k); err != nil || ok && string(v) != k {
						errs <- fmt.Errorf("Get(%s) = %q, %v, %v", k, v, ok, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// get checks what key holds: want, or nothing when want is nil.
func get(t *testing.T, s cache.Store, key string, want []byte) {
	t.Helper()
	v, ok, err := s.Get(context.Background(), key)
	switch {
	case err != nil:
		t.Errorf("Get(%s): %v", key, err)
	case want == nil && ok:
		t.Errorf("Get(%s) = %q; want nothing", key, v)
	case want != nil && (!ok || !bytes.Equal(v, want)):
		t.Errorf("Get(%s) = %.40q, %v; want %.40q", key, v, ok, want)
	}
}
