package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
)

// fakeDoer answers simple-format records by their prompt "rec ID":
// ids starting "fail" get ValidationException, "throttleN-" are throttled
// (after the engine's retries) their first N sends, "wait" block until the
// context ends; everything else succeeds.
type fakeDoer struct {
	mu     sync.Mutex
	sends  map[string]int
	clk    clock.Clock
	onSend func(id string, n int) // called before answering, outside the lock
}

func newFakeDoer(clk clock.Clock) *fakeDoer { return &fakeDoer{sends: map[string]int{}, clk: clk} }

func (d *fakeDoer) count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sends[id]
}

func (d *fakeDoer) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range d.sends {
		n += v
	}
	return n
}

func (d *fakeDoer) Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error) {
	var body struct {
		Messages []struct {
			Content []struct{ Text string } `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(call.Body, &body); err != nil || len(body.Messages) == 0 {
		return nil, nil, fmt.Errorf("fake: unreadable body %s", call.Body)
	}
	id := strings.TrimPrefix(body.Messages[0].Content[0].Text, "rec ")
	d.mu.Lock()
	d.sends[id]++
	n := d.sends[id]
	d.mu.Unlock()
	if d.onSend != nil {
		d.onSend(id, n)
	}
	t := attempt.Target{Model: call.Model, Region: "us-east-1"}
	rep := &engine.Report{Target: t}
	att := func(code string, status int) {
		rep.Attempts = append(rep.Attempts, engine.Attempt{Target: t, Code: code, Status: status, Start: d.clk.Now()})
	}
	var throttles int
	switch {
	case strings.HasPrefix(id, "wait"):
		<-ctx.Done()
		att(catalog.CodeContextCanceled, 0)
		return nil, rep, &engine.Error{Entry: catalog.Must(catalog.CodeContextCanceled), Report: rep, Err: ctx.Err()}
	case strings.HasPrefix(id, "fail"):
		att(catalog.CodeValidation, 400)
		return nil, rep, &engine.Error{Entry: catalog.Must(catalog.CodeValidation), Code: catalog.CodeValidation, Status: 400,
			Message: "bad request " + id, Report: rep}
	case strings.HasPrefix(id, "throttle"):
		fmt.Sscanf(id, "throttle%d-", &throttles)
	}
	if n <= throttles {
		for range 3 {
			att(catalog.CodeThrottling, 429)
		}
		return nil, rep, &engine.Error{Entry: catalog.Must(catalog.CodeThrottling), Code: catalog.CodeThrottling, Status: 429,
			Message: "Too many tokens, please wait before trying again.", Report: rep}
	}
	att("", 200)
	out := fmt.Sprintf(`{"output":{"message":{"role":"assistant","content":[{"text":"answer to %s"}]}},"stopReason":"end_turn","usage":{"inputTokens":10,"outputTokens":5,"totalTokens":15}}`, id)
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(out))}, rep, nil
}

func simpleInput(t *testing.T, ids ...string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "{\"id\":%q,\"prompt\":\"rec %s\"}\n", id, id)
	}
	return writeFile(t, "in.jsonl", b.String())
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// readResults reads the results file: line per id, failing on a torn or
// repeated line.
func readResults(t *testing.T, path string) map[string]resultLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("results file ends in a torn line: %q", data[max(0, len(data)-80):])
	}
	out := map[string]resultLine{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var l resultLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("results line %d is not JSON: %v: %q", n, err, sc.Text())
		}
		raw := l.ID
		if raw == nil {
			raw = l.RecordID
		}
		var id string
		if json.Unmarshal(raw, &id) != nil {
			id = string(raw)
		}
		if _, dup := out[id]; dup {
			t.Fatalf("record %s has two result lines", id)
		}
		out[id] = l
	}
	return out
}

func baseOptions(t *testing.T, in string, d Doer, clk clock.Clock) Options {
	dir := t.TempDir()
	return Options{In: in, Out: filepath.Join(dir, "out.jsonl"), Model: "anthropic.claude-3-haiku-20240307-v1:0", Doer: d, Clock: clk}
}

func TestRunAllSucceed(t *testing.T) {
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	all := ids("r", 60)
	o := baseOptions(t, simpleInput(t, all...), d, clk)
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 60 || sum.Succeeded != 60 || sum.Failed != 0 || sum.Pending != 0 || sum.Sent != 60 || sum.Resumed ||
		sum.InputTokens != 600 || sum.OutputTokens != 300 {
		t.Errorf("summary %+v", sum)
	}
	res := readResults(t, o.Out)
	for _, id := range all {
		l, ok := res[id]
		if !ok {
			t.Fatalf("no result for %s", id)
		}
		if l.Reply == nil || *l.Reply != "answer to "+id || l.Usage == nil || l.Usage.TotalTokens != 15 || l.Error != nil || l.Attempts != 1 {
			t.Errorf("result %s: %+v", id, l)
		}
		if d.count(id) != 1 {
			t.Errorf("%s sent %d times", id, d.count(id))
		}
	}
	// Running the finished batch again sends nothing.
	sum, err = Run(context.Background(), o)
	if err != nil || !sum.Resumed || sum.Sent != 0 || sum.Succeeded != 60 || sum.Before != 60 {
		t.Errorf("second run: %+v, %v", sum, err)
	}
	if len(readResults(t, o.Out)) != 60 {
		t.Error("the second run changed the results")
	}
}

func TestRunFailuresAreParked(t *testing.T) {
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	store := dlq.NewMemory()
	o := baseOptions(t, simpleInput(t, "ok1", "fail1", "ok2", "fail2"), d, clk)
	o.DLQ = &dlq.Recorder{Store: store, Source: "batch", Clock: clk}
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Succeeded != 2 || sum.Failed != 2 || sum.FailedByCode[catalog.CodeValidation] != 2 {
		t.Errorf("summary %+v", sum)
	}
	res := readResults(t, o.Out)
	parked, _ := store.List(context.Background(), dlq.Filter{})
	if len(parked) != 2 {
		t.Fatalf("%d parked, want 2", len(parked))
	}
	for _, e := range parked {
		id := strings.TrimPrefix(e.Key, "batch:"+sum.RunID+":")
		l := res[id]
		if l.Error == nil || l.Error.Code != catalog.CodeValidation || l.Error.Status != 400 || l.Error.DLQID != e.ID || l.Reply != nil {
			t.Errorf("result of %s: %+v (entry %d)", id, l, e.ID)
		}
		if e.Code != catalog.CodeValidation || e.Op != "converse" || !strings.Contains(string(e.Body), "rec "+id) || e.Source != "batch" {
			t.Errorf("entry %+v", e)
		}
	}
}

func TestRunRequeuesThrottled(t *testing.T) {
	tests := []struct {
		name        string
		maxRequeues int
		ok          bool
		sends       int
	}{
		{name: "recovers after two requeues", maxRequeues: 0, ok: true, sends: 3},
		{name: "fails when requeues run out", maxRequeues: 1, ok: false, sends: 2},
		{name: "no requeues", maxRequeues: -1, ok: false, sends: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewAuto(t0)
			d := newFakeDoer(clk)
			store := dlq.NewMemory()
			lim := mustAIMD(t, AIMDOptions{Initial: 8})
			o := baseOptions(t, simpleInput(t, "a", "throttle2-b", "c"), d, clk)
			o.DLQ = &dlq.Recorder{Store: store, Clock: clk}
			o.Limiter = lim
			o.MaxRequeues = tt.maxRequeues
			start := clk.Now()
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.count("throttle2-b"); got != tt.sends {
				t.Errorf("throttled record sent %d times, want %d", got, tt.sends)
			}
			l := readResults(t, o.Out)["throttle2-b"]
			if tt.ok != (l.Error == nil) || sum.Requeued != tt.sends-1 {
				t.Errorf("result %+v, requeued %d", l, sum.Requeued)
			}
			if !tt.ok && (l.Error.Code != catalog.CodeThrottling || l.Error.DLQID == 0) {
				t.Errorf("a throttled record that gave up: %+v", l.Error)
			}
			if lim.Cuts() == 0 {
				t.Error("the limiter was never told about the throttling")
			}
			// Requeue waits are 0.5-1 s, then 1-2 s: measured on the clock, not slept.
			lo := map[int]time.Duration{3: 1500 * time.Millisecond, 2: 500 * time.Millisecond, 1: 0}[tt.sends]
			hi := map[int]time.Duration{3: 3 * time.Second, 2: time.Second, 1: 0}[tt.sends]
			if took := clk.Now().Sub(start); took < lo || took > hi {
				t.Errorf("the run took %v on the clock; requeue waits add up to %v..%v", took, lo, hi)
			}
		})
	}
}

// TestRunStopAndResume stops a run gracefully part way (in-flight records
// finish and are checkpointed), then resumes it: every record has one line
// and was sent once.
func TestRunStopAndResume(t *testing.T) {
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	all := ids("r", 80)
	stop := make(chan struct{})
	var once sync.Once
	d.onSend = func(id string, n int) {
		if d.total() >= 25 {
			once.Do(func() { close(stop) })
		}
	}
	o := baseOptions(t, simpleInput(t, all...), d, clk)
	o.Stop = stop
	o.Limiter = mustAIMD(t, AIMDOptions{Initial: 4, Max: 4})
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Pending == 0 || sum.Succeeded+sum.Pending != 80 || sum.Succeeded != sum.Sent {
		t.Fatalf("stopped run: %+v", sum)
	}
	first := sum.Succeeded
	o.Stop = nil
	sum, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Resumed || sum.Before != first || sum.Succeeded != 80 || sum.Sent != 80-first || sum.Cut != 0 {
		t.Errorf("resumed run: %+v (first run finished %d)", sum, first)
	}
	res := readResults(t, o.Out)
	for _, id := range all {
		if _, ok := res[id]; !ok || d.count(id) != 1 {
			t.Errorf("%s: result %v, sent %d times", id, ok, d.count(id))
		}
	}
}

// TestRunCancelAndResume cancels a run with calls in flight: those calls
// are abandoned, not failed or parked, and run again on resume; records
// checkpointed before are not sent again.
func TestRunCancelAndResume(t *testing.T) {
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	all := append(ids("r", 30), "wait-1", "wait-2")
	ctx, cancel := context.WithCancel(context.Background())
	d.onSend = func(id string, n int) {
		if strings.HasPrefix(id, "wait") && d.count("wait-1")+d.count("wait-2") == 2 {
			cancel() // both waiters are in flight
		}
	}
	store := dlq.NewMemory()
	o := baseOptions(t, simpleInput(t, all...), d, clk)
	o.DLQ = &dlq.Recorder{Store: store, Clock: clk}
	o.Limiter = mustAIMD(t, AIMDOptions{Initial: 3, Max: 3})
	sum, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v", err)
	}
	if sum.Pending < 2 || sum.Failed != 0 {
		t.Fatalf("cancelled run: %+v", sum)
	}
	if parked, _ := store.List(context.Background(), dlq.Filter{}); len(parked) != 0 {
		t.Errorf("a cancelled call was parked: %v", parked)
	}
	done := map[string]bool{}
	for id := range readResults(t, o.Out) {
		done[id] = true
	}
	// Resume with the waiters answering this time.
	d.onSend = nil
	d2 := newFakeDoer(clk)
	o.Doer = doerFunc(func(ctx context.Context, c *engine.Call) (*http.Response, *engine.Report, error) {
		c2 := *c
		c2.Body = bytes.ReplaceAll(c.Body, []byte("rec wait"), []byte("rec okwait"))
		return d2.Do(ctx, &c2)
	})
	sum, err = Run(context.Background(), o)
	if err != nil || sum.Succeeded != 32 || sum.Pending != 0 {
		t.Fatalf("resumed: %+v, %v", sum, err)
	}
	res := readResults(t, o.Out)
	for _, id := range all {
		if _, ok := res[id]; !ok {
			t.Errorf("no result for %s", id)
		}
		sent := d2.count(id) + d2.count("ok"+id)
		if done[id] && sent != 0 {
			t.Errorf("%s was checkpointed in the first run and sent again", id)
		}
		if !done[id] && sent != 1 {
			t.Errorf("%s sent %d times on resume", id, sent)
		}
	}
}

type doerFunc func(context.Context, *engine.Call) (*http.Response, *engine.Report, error)

func (f doerFunc) Do(ctx context.Context, c *engine.Call) (*http.Response, *engine.Report, error) {
	return f(ctx, c)
}

// TestRunCutsTornTail resumes a run whose results file has a tail written
// after the last checkpoint (a crash between write and checkpoint).
func TestRunCutsTornTail(t *testing.T) {
	clk := clock.NewAuto(t0)
	d := newFakeDoer(clk)
	stop := make(chan struct{})
	var once sync.Once
	d.onSend = func(string, int) {
		if d.total() >= 5 {
			once.Do(func() { close(stop) })
		}
	}
	all := ids("r", 20)
	o := baseOptions(t, simpleInput(t, all...), d, clk)
	o.Stop = stop
	o.Limiter = mustAIMD(t, AIMDOptions{Initial: 1, Max: 1})
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	tail := `{"id":"r019","reply":"written but never checkpointed"}` + "\n" + `{"id":"r018","rep`
	f, _ := os.OpenFile(o.Out, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(tail)
	f.Close()
	o.Stop = nil
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Cut != int64(len(tail)) || sum.Succeeded != 20 {
		t.Errorf("cut %d bytes (want %d), summary %+v", sum.Cut, len(tail), sum)
	}
	res := readResults(t, o.Out)
	if len(res) != 20 || strings.Contains(*res["r019"].Reply, "never checkpointed") {
		t.Errorf("%d results; r019 = %q", len(res), *res["r019"].Reply)
	}
}

func TestRunRefuses(t *testing.T) {
	clk := clock.NewAuto(t0)
	tests := []struct {
		name     string
		setup    func(t *testing.T, o *Options)
		want     string
		mismatch bool // the error is ErrStateMismatch
	}{
		{name: "results without a state", setup: func(t *testing.T, o *Options) {
			os.WriteFile(o.Out, []byte("{}\n"), 0o644)
		}, want: "already exists and is not empty"},
		{name: "state of another input", setup: func(t *testing.T, o *Options) {
			run(t, *o)
			o.In = simpleInput(t, "x", "y")
		}, want: "was made for input", mismatch: true},
		{name: "state writing elsewhere", setup: func(t *testing.T, o *Options) {
			run(t, *o)
			o.State = o.Out + ".state"
			o.Out = filepath.Join(t.TempDir(), "other.jsonl")
		}, want: "pass the same --out", mismatch: true},
		{name: "another model", setup: func(t *testing.T, o *Options) {
			run(t, *o)
			o.Model = "amazon.nova-lite-v1:0"
		}, want: "resume with the same model", mismatch: true},
		{name: "results cut short since", setup: func(t *testing.T, o *Options) {
			run(t, *o)
			os.Truncate(o.Out, 10)
		}, want: "was cut or replaced"},
		{name: "input is the results", setup: func(t *testing.T, o *Options) {
			o.Out = o.In
		}, want: "the same file"},
		{name: "a dead-letter database as state", setup: func(t *testing.T, o *Options) {
			s, err := dlq.OpenSQLite(filepath.Join(t.TempDir(), "dlq.db"))
			if err != nil {
				t.Fatal(err)
			}
			o.State = s.Path()
			s.Close()
		}, want: "not a keel batch state file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOptions(t, simpleInput(t, "a", "b"), newFakeDoer(clk), clk)
			tt.setup(t, &o)
			_, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: %v; want an error saying %q", err, tt.want)
			}
			if errors.Is(err, ErrStateMismatch) != tt.mismatch {
				t.Errorf("errors.Is(%v, ErrStateMismatch) = %v, want %v", err, !tt.mismatch, tt.mismatch)
			}
		})
	}
}

func run(t *testing.T, o Options) *Summary {
	t.Helper()
	sum, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestStateStatus(t *testing.T) {
	clk := clock.NewAuto(t0)
	o := baseOptions(t, simpleInput(t, "a", "fail-b", "c"), newFakeDoer(clk), clk)
	run(t, o)
	st, err := OpenState(o.Out + ".state")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(o.Out)
	if s.Succeeded != 2 || s.Failed != 1 || s.Pending != 0 || s.FailedByCode[catalog.CodeValidation] != 1 || s.OutLen != fi.Size() ||
		s.InputTokens != 20 || s.Meta.Total != 3 || s.Meta.Model != o.Model {
		t.Errorf("status %+v", s)
	}
}
