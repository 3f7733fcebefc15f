package batch

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/lockfile"
)

// startHeldRun starts a run whose first record blocks in the Doer until
// release is closed; it returns when that record has been sent.
func startHeldRun(t *testing.T, o Options, d *fakeDoer) (release chan struct{}, done chan error) {
	t.Helper()
	sent := make(chan struct{})
	release = make(chan struct{})
	var once bool
	d.onSend = func(id string, n int) {
		if id == "held" && !once {
			once = true
			close(sent)
			<-release
		}
	}
	done = make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), o)
		done <- err
	}()
	<-sent
	return release, done
}

// TestBatchRunRefusesSecondRun: a second run on the same state (and
// results) file while the first one runs is refused at once, with a message
// naming the holder; the first run's results are whole (issue 15, item 2).
func TestBatchRunRefusesSecondRun(t *testing.T) {
	if !lockfile.Supported {
		t.Skip("no file locks on this system")
	}
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	all := append([]string{"held"}, ids("r", 20)...)
	o := baseOptions(t, simpleInput(t, all...), d, clk)
	o.Limiter = mustAIMD(t, AIMDOptions{})
	release, done := startHeldRun(t, o, d)

	tests := []struct {
		name    string
		change  func(o *Options)
		unnamed bool // the holder is another state file's: its pid is not known
	}{
		{name: "same state and results"},
		{name: "restart", change: func(o *Options) { o.Restart = true }},
		{name: "same results, another state", change: func(o *Options) { o.State = o.Out + ".other-state" }, unnamed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o2 := o
			if tt.change != nil {
				tt.change(&o2)
			}
			sum, err := Run(context.Background(), o2)
			if !errors.Is(err, ErrRunning) {
				t.Fatalf("second run: %+v, %v; want ErrRunning", sum, err)
			}
			if msg := err.Error(); !tt.unnamed && !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) {
				t.Errorf("message %q does not name the holder", msg)
			}
		})
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	res := readResults(t, o.Out)
	for _, id := range all {
		if _, ok := res[id]; !ok || d.count(id) != 1 {
			t.Errorf("record %s: result %v, sent %d times", id, ok, d.count(id))
		}
	}
	// Once the first run is over, the same command runs (and resumes).
	if sum := run(t, o); !sum.Resumed || sum.Sent != 0 {
		t.Errorf("after the first run: %+v", sum)
	}
}

// TestBatchRunRestart: --restart starts a finished run over, a new run id,
// every record sent again, the results file rewritten (issue 15, item 13).
func TestBatchRunRestart(t *testing.T) {
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	o := baseOptions(t, simpleInput(t, ids("r", 10)...), d, clk)
	first := run(t, o)
	o.Restart = true
	again := run(t, o)
	if again.Resumed || again.RunID == first.RunID || again.Sent != 10 || again.Succeeded != 10 || again.Before != 0 {
		t.Errorf("restart: %+v (first run %s)", again, first.RunID)
	}
	if res := readResults(t, o.Out); len(res) != 10 {
		t.Errorf("%d results after restart, want 10", len(res))
	}
	// A restart may also change what the state was made for (the model).
	o.Model = "amazon.nova-lite-v1:0"
	if sum := run(t, o); sum.Sent != 10 {
		t.Errorf("restart with another model: %+v", sum)
	}
}
