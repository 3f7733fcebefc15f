package cache

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// failing is a Store whose every operation fails while down is set.
type failing struct {
	*Memory
	down bool
}

var errDown = errors.New("store down")

func (f *failing) Get(ctx context.Context, k string) ([]byte, bool, error) {
	if f.down {
		return nil, false, errDown
	}
	return f.Memory.Get(ctx, k)
}

func (f *failing) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	if f.down {
		return errDown
	}
	return f.Memory.Set(ctx, k, v, ttl)
}

func TestCacheStoreFailuresAreMisses(t *testing.T) {
	var logs strings.Builder
	st := &failing{Memory: NewMemory(1<<20, nil)}
	c, err := New(Options{Mode: ModeAll, Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k, ok := c.Key(Request{Family: "converse", Model: "m", Body: []byte(`{}`)})
	if !ok {
		t.Fatal("no key")
	}
	e := NewEntry(200, http.Header{}, []byte(`{"a":1}`), time.Unix(0, 0))
	st.down = true
	c.Put(ctx, k, e)
	for range 3 {
		if _, hit := c.Get(ctx, k); hit {
			t.Fatal("a hit from a failing store")
		}
	}
	if n := strings.Count(logs.String(), "store failed"); n != 1 {
		t.Errorf("%d failure lines for one episode; want 1:\n%s", n, logs.String())
	}
	st.down = false
	c.Put(ctx, k, e)
	if got, hit := c.Get(ctx, k); !hit || string(got.Body) != `{"a":1}` {
		t.Errorf("after the store came back: %v", hit)
	}
	// An entry that does not decode is a miss too.
	st.Memory.Set(ctx, k.String(), []byte("garbage"), time.Hour)
	if _, hit := c.Get(ctx, k); hit {
		t.Error("a hit from an entry that does not decode")
	}
	if s := c.Stats(ctx); s.Failures != 5 || s.Stored != 1 {
		t.Errorf("Stats = %+v; want 5 failures (1 write, 3 reads, 1 decode) and 1 stored", s)
	}
}

func TestCacheKeyRule(t *testing.T) {
	det, _ := New(Options{Mode: ModeDeterministic, Store: NewMemory(1<<20, nil)})
	all, _ := New(Options{Mode: ModeAll, Store: NewMemory(1<<20, nil), Shared: true})
	warm := Request{Family: "converse", Model: "m", Body: []byte(`{"inferenceConfig":{"temperature":0.5}}`)}
	cold := Request{Family: "converse", Model: "m", Body: []byte(`{"inferenceConfig":{"temperature":0}}`)}
	text := Request{Family: "invoke", Model: "m", Body: []byte(`hello`)}
	if _, ok := det.Key(warm); ok {
		t.Error("deterministic mode keyed a request at temperature 0.5")
	}
	if _, ok := det.Key(cold); !ok {
		t.Error("deterministic mode did not key a request at temperature 0")
	}
	if _, ok := all.Key(warm); !ok {
		t.Error("mode all did not key a JSON request")
	}
	if _, ok := all.Key(text); ok {
		t.Error("a body that is not JSON got a key")
	}
	a, b := cold, cold
	a.Caller, b.Caller = "alice", "bob"
	ka, _ := all.Key(a)
	if kb, _ := all.Key(b); ka != kb {
		t.Error("shared: callers got different keys")
	}
	ka, _ = det.Key(a)
	if kb, _ := det.Key(b); ka == kb {
		t.Error("not shared: two callers got one key")
	}
	if c, err := New(Options{}); c != nil || err != nil {
		t.Errorf("mode off: New = %v, %v; want nil, nil", c, err)
	}
	if _, err := New(Options{Mode: ModeAll}); err == nil {
		t.Error("no store: no error")
	}
}

func TestCacheCallerLeavingIsNotAStoreFailure(t *testing.T) {
	var logs strings.Builder
	st := &failing{Memory: NewMemory(1<<20, nil), down: true}
	c, _ := New(Options{Mode: ModeAll, Store: st, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k, _ := c.Key(Request{Family: "converse", Body: []byte(`{}`)})
	c.Get(ctx, k)
	c.Put(ctx, k, NewEntry(200, http.Header{}, []byte(`{}`), time.Unix(0, 0)))
	if s := c.Stats(context.Background()); s.Failures != 0 || logs.Len() != 0 {
		t.Errorf("a cancelled caller counted %d store failures and logged %q", s.Failures, logs.String())
	}
}
