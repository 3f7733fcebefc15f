package batch

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
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
		name   string
		change func(o *Options)
	}{
		{name: "same state and results"},
		{name: "restart", change: func(o *Options) { o.Restart = true }},
		// The holder is named by the results file's lock too, with its
		// state file (review of issue 15, item 2: it was not).
		{name: "same results, another state", change: func(o *Options) { o.State = o.Out + ".other-state" }},
		{name: "same state, another results file", change: func(o *Options) { o.State = o.Out + ".state"; o.Out += ".other" }},
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
			if msg := err.Error(); !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(msg, "keel batch run") {
				t.Errorf("message %q does not name the holder", msg)
			}
			if msg := err.Error(); tt.name != "same state, another results file" && !strings.Contains(msg, "--state "+o.Out+".state") {
				t.Errorf("message %q does not name the holder's state file", msg)
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

// TestBatchRunRefusedRunChangesNothing: a run that is refused (another run
// writes its results file, or the results file is someone's) changes no
// file: a refused --restart has not wiped its state file, and a refused run
// with a new --state leaves no state file behind. Before, --restart removed
// the state before the results file's lock was tried (review of issue 15,
// item 2).
func TestBatchRunRefusedRunChangesNothing(t *testing.T) {
	if !lockfile.Supported {
		t.Skip("no file locks on this system")
	}
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	all := append([]string{"held"}, ids("r", 10)...)
	in := simpleInput(t, all...)
	dir := t.TempDir()
	// A finished run: state b.state, results r2.out.
	finished := baseOptions(t, in, d, clk)
	finished.Out, finished.State = filepath.Join(dir, "r2.out"), filepath.Join(dir, "b.state")
	run(t, finished)
	// A run under way writing r.out.
	o := baseOptions(t, in, d, clk)
	o.Out = filepath.Join(dir, "r.out")
	o.Limiter = mustAIMD(t, AIMDOptions{Initial: 1})
	release, done := startHeldRun(t, o, d)
	written, err := os.ReadFile(finished.Out)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		change   func(o *Options)
		newState string // a state file the refused run must not leave behind
	}{
		{name: "restart with another run's results file", change: func(o *Options) { o.State, o.Restart = finished.State, true }},
		{name: "new state, another run's results file", change: func(o *Options) { o.State = filepath.Join(dir, "new.state") },
			newState: filepath.Join(dir, "new.state")},
		{name: "restart, new state, another run's results file", change: func(o *Options) { o.State, o.Restart = filepath.Join(dir, "new2.state"), true },
			newState: filepath.Join(dir, "new2.state")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o2 := o
			tt.change(&o2)
			sum, err := Run(context.Background(), o2)
			if !errors.Is(err, ErrRunning) {
				t.Fatalf("run: %+v, %v; want ErrRunning", sum, err)
			}
			if tt.newState != "" {
				if _, err := os.Stat(tt.newState); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the refused run left %s behind (%v)", tt.newState, err)
				}
			}
		})
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the run under way: %v", err)
	}
	// The finished run's state file is whole: it resumes, sending nothing.
	if sum := run(t, finished); !sum.Resumed || sum.Sent != 0 || sum.Succeeded != len(all) {
		t.Errorf("the finished run after the refusals: %+v", sum)
	}
	if b, _ := os.ReadFile(finished.Out); !bytes.Equal(b, written) {
		t.Errorf("%s changed", finished.Out)
	}
	// A results file with content and no run is refused (it is someone's):
	// a new state file is not left behind either.
	o3 := finished
	o3.State = filepath.Join(dir, "other.state")
	if _, err := Run(context.Background(), o3); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a results file with content and no run: %v", err)
	}
	if _, err := os.Stat(o3.State); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused run left %s behind (%v)", o3.State, err)
	}
}
