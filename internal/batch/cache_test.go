package batch

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/cache"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/engine"
)

// TestRunWithCacheSendsEachPromptOnce runs 1,000 records of 10 distinct
// prompts (temperature 0) through an engine with the response cache: the
// emulator serves each prompt once, every record gets its reply, and a
// rerun of the file sends nothing upstream.
func TestRunWithCacheSendsEachPromptOnce(t *testing.T) {
	u, oc := startEmulator(t, "rules: []\n")
	clk := clock.NewAuto(t0)
	c, err := cache.New(cache.Options{Mode: cache.ModeDeterministic, Store: cache.NewMemory(64<<20, nil)})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Endpoints: attempt.FixedEndpoint{URL: u}, Clock: clk, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	const n, distinct = 1000, 10
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":%d,"prompt":"Question %d: why is the sky blue?","maxTokens":64,"temperature":0}`+"\n", i, i%distinct)
	}
	in := writeFile(t, "in.jsonl", b.String())
	for run, wantServed := range []int{distinct, distinct} { // the rerun adds nothing
		o := baseOptions(t, in, eng, clk)
		sum, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		res := readResults(t, o.Out)
		oc.mu.Lock()
		served := oc.n["OK"]
		oc.mu.Unlock()
		if sum.Succeeded != n || len(res) != n || served != wantServed {
			t.Errorf("run %d: %d succeeded, %d results, the emulator served %d replies; want %d, %d, %d",
				run, sum.Succeeded, len(res), served, n, n, wantServed)
		}
		for id, l := range res {
			if l.Reply == nil || *l.Reply == "" {
				t.Fatalf("run %d, record %s: no reply", run, id)
			}
		}
	}
	if s := c.Stats(context.Background()); s.Misses+s.Coalesced+s.Hits != 2*n || s.Stored != distinct {
		t.Errorf("cache stats %+v; want %d calls and %d entries stored", s, 2*n, distinct)
	}
}
