package admission

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/trace/*.golden from the current behaviour")

// TestTrace drives Governors through seeded sequences of admissions (both
// classes, with and without deadlines), settles, throttles and cancels, and
// compares every decision and every target's figures after each step with a
// golden file. It pins the Governor's behaviour: a change that is meant to
// keep it (a restructuring) must leave the files as they are; one that is
// meant to change it rewrites them with -update, and the diff shows how.
//
// The race detector perturbs the order in which goroutines woken at the same
// instant run (and which ready case a select takes), so under it the test
// is skipped; it is exact without it.
func TestTrace(t *testing.T) {
	if raceEnabled {
		t.Skip("goroutines woken at the same instant run in another order under the race detector")
	}
	tests := []struct {
		name string
		opts Options
		tg   Target
		seed uint64
	}{
		{name: "known", opts: Options{Default: Quota{TokensPerMinute: 200_000, RequestsPerMinute: 120}}, tg: haiku, seed: 1},
		{name: "learning", opts: Options{Default: Quota{TokensPerMinute: 300_000, Learn: true}}, tg: sonnet, seed: 2},
		{name: "unknown", opts: Options{MaxWait: 20 * time.Second}, tg: haiku, seed: 3},
		{name: "smallfirst", opts: Options{Default: Quota{TokensPerMinute: 100_000}, SmallFirst: true, BatchEvery: 2}, tg: haiku, seed: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, bubble(func(t *testing.T) {
			got := runTrace(t, tt.opts, tt.tg, tt.seed)
			path := "testdata/trace/" + tt.name + ".golden"
			if *update {
				if err := os.MkdirAll("testdata/trace", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
				for i := range min(len(gl), len(wl)) {
					if gl[i] != wl[i] {
						t.Fatalf("%s: line %d differs:\n got %s\nwant %s", path, i+1, gl[i], wl[i])
					}
				}
				t.Fatalf("%s: %d lines, want %d", path, len(gl), len(wl))
			}
		}))
	}
}

// runTrace runs 400 seeded steps against g in the test's bubble and returns
// the record.
func runTrace(t *testing.T, o Options, tg Target, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 99))
	jitter := rand.New(rand.NewPCG(seed, 7))
	o.Rand = jitter.Float64
	g, clk := newBubbleGov(t, o)
	start := clk.Now()
	var b strings.Builder
	ch := make(chan result, 512)
	var live []Ticket
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
		synctest.Wait()
	}()
	for step := range 400 {
		clk.Advance(time.Duration(r.IntN(3000)) * time.Millisecond)
		fmt.Fprintf(&b, "step %d at %v:", step, clk.Now().Sub(start))
		switch k := r.IntN(10); {
		case k < 5:
			est := Estimate{InputTokens: 100 + r.IntN(8000), MaxTokens: []int{0, 256, 1024, 4096, 20_000}[r.IntN(5)]}
			class := Class(r.IntN(2))
			ctx, cancel := context.WithCancel(context.Background())
			if r.IntN(3) > 0 {
				ctx, cancel = context.WithTimeout(ctx, time.Duration(1+r.IntN(40))*time.Second)
			}
			cancels = append(cancels, cancel)
			name := fmt.Sprintf("call%d", step)
			fmt.Fprintf(&b, " admit %s %+v %v", name, est, class)
			admitAsync(ctx, g, tg, est, class, name, ch)
		case k < 8 && len(live) > 0:
			i := r.IntN(len(live))
			tk := live[i]
			live = slices.Delete(live, i, i+1)
			u := Usage{InputTokens: max(tk.InputTokens()/2+r.IntN(max(tk.InputTokens(), 1)), 1), OutputTokens: r.IntN(tk.MaxTokens() + 1)}
			fmt.Fprintf(&b, " settle %d %+v", i, u)
			tk.Settle(u)
		case k < 9 && len(live) > 0:
			i := r.IntN(len(live))
			tk := live[i]
			live = slices.Delete(live, i, i+1)
			fmt.Fprintf(&b, " throttle %d", i)
			tk.Throttled()
		case len(live) > 0:
			i := r.IntN(len(live))
			tk := live[i]
			live = slices.Delete(live, i, i+1)
			fmt.Fprintf(&b, " cancel %d", i)
			tk.Cancel()
		default:
			fmt.Fprintf(&b, " idle")
		}
		synctest.Wait()
		var done []result
		for len(ch) > 0 {
			done = append(done, <-ch)
		}
		slices.SortFunc(done, func(a, b result) int { return strings.Compare(a.name, b.name) })
		for _, d := range done {
			if d.err != nil {
				fmt.Fprintf(&b, "\n  %s: %v", d.name, d.err)
				continue
			}
			fmt.Fprintf(&b, "\n  %s: granted %d tokens (input %d, max %d) after %v", d.name, d.tk.Tokens(), d.tk.InputTokens(), d.tk.MaxTokens(), d.tk.Waited())
			live = append(live, d.tk)
		}
		// The figures that move, without field names (see Stats for their
		// order), to keep the files small.
		s, ok := g.Stats(tg)
		s.Target, s.Model, s.Floor, s.Ceiling, s.Learning, s.RequestsPerMinute = Target{}, Model{}, 0, 0, false, 0
		fmt.Fprintf(&b, "\n  %v %v\n", ok, s)
	}
	return b.String()
}
