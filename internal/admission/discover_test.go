package admission

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// quotaSource is an Options.Discover that answers from a table, after a
// delay, counting its reads.
type quotaSource struct {
	mu    sync.Mutex
	tpm   map[string]int // by model; absent: err
	err   error
	delay time.Duration
	reads atomic.Int64
}

func (s *quotaSource) discover(ctx context.Context, t Target) (int, error) {
	s.reads.Add(1)
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.Tier != "" {
		return 0, errors.New("discover was asked for a tier")
	}
	if v, ok := s.tpm[t.Model]; ok {
		return v, nil
	}
	return 0, s.err
}

func (s *quotaSource) set(model string, tpm int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tpm[model] = tpm
}

// admitOnce admits and settles one small call to t, and returns t's stats.
func admitOnce(t *testing.T, g *Governor, tgt Target) Stats {
	t.Helper()
	tk, err := g.Admit(context.Background(), tgt, Estimate{InputTokens: 10, MaxTokens: 100}, Interactive)
	if err != nil {
		t.Fatalf("Admit(%s): %v", tgt, err)
	}
	tk.Settle(Usage{InputTokens: 10, OutputTokens: 10})
	st, _ := g.Stats(tgt)
	return st
}

func TestDiscover(t *testing.T) {
	const model = "anthropic.claude-3-haiku-20240307-v1:0"
	tests := []struct {
		name       string
		src        *quotaSource
		opts       Options
		target     Target
		wantLimit  int64
		wantSource string
		wantReads  int64
		wantWait   time.Duration // what the first call waits
	}{
		{name: "discovered", src: &quotaSource{tpm: map[string]int{model: 200_000}},
			target: Target{Model: model, Region: "us-east-1"}, wantLimit: 200_000, wantSource: SourceDiscovered, wantReads: 1},
		{name: "a tier draws on its model's quota", src: &quotaSource{tpm: map[string]int{model: 200_000}},
			target: Target{Model: model, Region: "us-east-1", Tier: "flex"}, wantLimit: 200_000, wantSource: SourceDiscovered, wantReads: 1},
		{name: "refused: learned", src: &quotaSource{tpm: map[string]int{}, err: errors.New("AccessDeniedException")},
			target: Target{Model: model, Region: "us-east-1"}, wantLimit: 0, wantSource: "", wantReads: 1},
		{name: "refused: the default stands", src: &quotaSource{tpm: map[string]int{}, err: errors.New("not listed")},
			opts:   Options{Default: Quota{TokensPerMinute: 50_000}},
			target: Target{Model: model, Region: "us-east-1"}, wantLimit: 50_000, wantSource: SourceConfigured, wantReads: 1},
		{name: "discovered wins over the default", src: &quotaSource{tpm: map[string]int{model: 300_000}},
			opts:   Options{Default: Quota{TokensPerMinute: 50_000, RequestsPerMinute: 100}},
			target: Target{Model: model, Region: "us-east-1"}, wantLimit: 300_000, wantSource: SourceDiscovered, wantReads: 1},
		{name: "configured wins, never read", src: &quotaSource{tpm: map[string]int{model: 300_000}},
			opts:   Options{Targets: map[Target]Quota{{Model: model, Region: "us-east-1"}: {TokensPerMinute: 40_000}}},
			target: Target{Model: model, Region: "us-east-1", Tier: "flex"}, wantLimit: 40_000, wantSource: SourceConfigured, wantReads: 0},
		{name: "too slow: not waited for past DiscoverWait", src: &quotaSource{tpm: map[string]int{model: 200_000}, delay: 10 * time.Second},
			target: Target{Model: model, Region: "us-east-1"}, wantLimit: 0, wantSource: "", wantReads: 1, wantWait: DefaultDiscoverWait},
		{name: "slow: waited for within DiscoverWait", src: &quotaSource{tpm: map[string]int{model: 200_000}, delay: time.Second},
			target: Target{Model: model, Region: "us-east-1"}, wantLimit: 200_000, wantSource: SourceDiscovered, wantReads: 1, wantWait: time.Second},
		{name: "MaxWait bounds the wait", src: &quotaSource{tpm: map[string]int{model: 200_000}, delay: time.Second},
			opts:   Options{MaxWait: 300 * time.Millisecond},
			target: Target{Model: model, Region: "us-east-1"}, wantLimit: 0, wantSource: "", wantReads: 1, wantWait: 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := tt.opts
				opts.Discover = tt.src.discover
				g, err := New(opts)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				st := admitOnce(t, g, tt.target)
				if waited := time.Since(start); waited != tt.wantWait {
					t.Errorf("the first call waited %v, want %v", waited, tt.wantWait)
				}
				if st.Limit != tt.wantLimit || st.Source != tt.wantSource {
					t.Errorf("limit %d (%q), want %d (%q)", st.Limit, st.Source, tt.wantLimit, tt.wantSource)
				}
				if tt.wantSource == SourceDiscovered && (st.Learning || st.Ceiling != tt.wantLimit) {
					t.Errorf("a discovered quota is known: Learning %v, Ceiling %d", st.Learning, st.Ceiling)
				}
				if tt.opts.Default.RequestsPerMinute > 0 && st.RequestsPerMinute != int64(tt.opts.Default.RequestsPerMinute) {
					t.Errorf("RequestsPerMinute %d, want the default's %d", st.RequestsPerMinute, tt.opts.Default.RequestsPerMinute)
				}
				admitOnce(t, g, tt.target) // no second read before DiscoverEvery
				time.Sleep(time.Minute)    // a slow read ends
				synctest.Wait()
				if n := tt.src.reads.Load(); n != tt.wantReads {
					t.Errorf("%d reads, want %d", n, tt.wantReads)
				}
			})
		})
	}
}

// TestDiscoverLateAnswer: a read slower than DiscoverWait sets the quota
// when it comes; the calls before it went by the learner.
func TestDiscoverLateAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tgt := Target{Model: "amazon.nova-lite-v1:0", Region: "us-west-2"}
		src := &quotaSource{tpm: map[string]int{tgt.Model: 120_000}, delay: 5 * time.Second}
		g, err := New(Options{Discover: src.discover})
		if err != nil {
			t.Fatal(err)
		}
		if st := admitOnce(t, g, tgt); st.Source != "" {
			t.Fatalf("before the answer: source %q", st.Source)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st, _ := g.Stats(tgt); st.Limit != 120_000 || st.Source != SourceDiscovered {
			t.Errorf("after the answer: limit %d (%q)", st.Limit, st.Source)
		}
	})
}

// TestDiscoverRefresh: the quota is read again DiscoverEvery after the last
// read, on the next call, and a changed quota replaces the old one; an
// unchanged one keeps what throttles taught.
func TestDiscoverRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tgt := Target{Model: "amazon.nova-lite-v1:0", Region: "us-west-2"}
		src := &quotaSource{tpm: map[string]int{tgt.Model: 120_000}}
		g, err := New(Options{Discover: src.discover, DiscoverEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		admitOnce(t, g, tgt)
		time.Sleep(59 * time.Minute)
		admitOnce(t, g, tgt)
		synctest.Wait()
		if n := src.reads.Load(); n != 1 {
			t.Fatalf("%d reads within DiscoverEvery, want 1", n)
		}
		src.set(tgt.Model, 480_000)
		time.Sleep(2 * time.Minute)
		admitOnce(t, g, tgt) // starts the read
		synctest.Wait()
		if st, _ := g.Stats(tgt); st.Limit != 480_000 || st.Source != SourceDiscovered || st.Ceiling != 480_000 {
			t.Errorf("after the refresh: limit %d (%q), ceiling %d; want 480000 discovered", st.Limit, st.Source, st.Ceiling)
		}
		// A refresh that fails keeps the discovered quota.
		src.set(tgt.Model, 0)
		time.Sleep(2 * time.Hour)
		admitOnce(t, g, tgt)
		synctest.Wait()
		if st, _ := g.Stats(tgt); st.Limit != 480_000 || st.Source != SourceDiscovered {
			t.Errorf("after a failed refresh: limit %d (%q)", st.Limit, st.Source)
		}
		if n := src.reads.Load(); n != 3 {
			t.Errorf("%d reads, want 3", n)
		}
	})
}

func TestSetQuotaKeepsAdaptation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tgt := Target{Model: "amazon.nova-lite-v1:0", Region: "us-west-2"}
		g, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		admitOnce(t, g, tgt)
		g.SetQuota(tgt, 100_000)
		l := (*g.targets.Load())[tgt]
		l.mu.Lock()
		l.resize(70_000, time.Now()) // as a throttle would
		l.mu.Unlock()
		g.SetQuota(tgt, 100_000) // a refresh with the same quota
		if st, _ := g.Stats(tgt); st.Limit != 70_000 || st.Source != SourceDiscovered {
			t.Errorf("limit %d (%q), want 70000 kept", st.Limit, st.Source)
		}
		g.SetQuota(tgt, 0)
		g.SetQuota(Target{Model: "x", Region: "y"}, -5)
		if st, _ := g.Stats(tgt); st.Limit != 70_000 {
			t.Errorf("SetQuota(0) changed the limit to %d", st.Limit)
		}
	})
}

func TestDiscoverOptionsBad(t *testing.T) {
	for _, o := range []Options{{DiscoverEvery: -time.Second}, {DiscoverWait: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted a negative duration", o)
		}
	}
}

// TestDiscoverFastPathDoesNotAllocate: once a target's quota is read,
// discovery adds no allocation to Admit and Settle.
func TestDiscoverFastPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tgt := Target{Model: "amazon.nova-lite-v1:0", Region: "us-west-2"}
	src := &quotaSource{tpm: map[string]int{tgt.Model: 1 << 30}}
	g, err := New(Options{Discover: src.discover})
	if err != nil {
		t.Fatal(err)
	}
	admitOnce(t, g, tgt)
	n := testing.AllocsPerRun(1000, func() { admitOnce(t, g, tgt) })
	if n != 0 {
		t.Errorf("Admit+Settle with discovery allocates %v times, want 0", n)
	}
	if st, _ := g.Stats(tgt); st.Source != SourceDiscovered {
		t.Errorf("source %q", st.Source)
	}
}

// TestDiscoverRetriesFailure: a read that gave no quota is tried again a
// minute later (discoverRetry), not DiscoverEvery later.
func TestDiscoverRetriesFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tgt := Target{Model: "amazon.nova-lite-v1:0", Region: "us-west-2"}
		src := &quotaSource{tpm: map[string]int{}, err: errors.New("dial tcp: i/o timeout")}
		g, err := New(Options{Discover: src.discover})
		if err != nil {
			t.Fatal(err)
		}
		admitOnce(t, g, tgt)
		src.set(tgt.Model, 90_000)
		time.Sleep(discoverRetry - time.Second)
		admitOnce(t, g, tgt)
		synctest.Wait()
		if n := src.reads.Load(); n != 1 {
			t.Fatalf("%d reads before discoverRetry, want 1", n)
		}
		time.Sleep(time.Second)
		admitOnce(t, g, tgt)
		synctest.Wait()
		if st, _ := g.Stats(tgt); src.reads.Load() != 2 || st.Limit != 90_000 || st.Source != SourceDiscovered {
			t.Errorf("after discoverRetry: %d reads, limit %d (%q)", src.reads.Load(), st.Limit, st.Source)
		}
	})
}
