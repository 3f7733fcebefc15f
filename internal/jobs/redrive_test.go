package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
)

var prompt = regexp.MustCompile(`"content": ?"([^"]*)"`)

// fakeSender answers InvokeModel calls as the engine would, failing the
// records whose prompt is in fail; it counts the calls per prompt.
type fakeSender struct {
	mu    sync.Mutex
	fail  map[string]bool
	calls map[string]int
}

func (s *fakeSender) Do(_ context.Context, call *engine.Call) (*http.Response, *engine.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := prompt.FindStringSubmatch(string(call.Body))[1]
	s.calls[q]++
	if s.fail[q] {
		return nil, &engine.Report{}, errors.New("ValidationException: injected")
	}
	body := `{"content":[{"type":"text","text":"redriven ` + q + `"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}`
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader([]byte(body)))},
		&engine.Report{Attempts: make([]engine.Attempt, 1)}, nil
}

// TestRedriveOnDemand: a PartiallyCompleted job's failures go through the
// engine on demand; the run ends with every record answered or parked, and
// a kill at any point of it sends no record twice.
func TestRedriveOnDemand(t *testing.T) {
	for _, point := range []string{"", "parked", "redrive-saved", "redriven", "written"} {
		t.Run("kill at "+point, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.recordErr = func(id string) bool { return strings.HasSuffix(id, "7") } // R0007, R0017, ... R0097
			sender := &fakeSender{fail: map[string]bool{"q17": true}, calls: map[string]int{}}
			e.opts.Redrive = sender
			killed := e.killAt(point)
			sum, err := e.runner(t).Run(context.Background())
			if point != "" {
				if !killed() {
					t.Fatalf("not killed at %s: %v", point, err)
				}
				if fi, err := os.Stat(e.opts.Out + ".redrive"); point != "parked" && (err != nil || fi.Mode().Perm() != 0o600) {
					t.Fatalf("redrive file after a kill at %s: %v, want it there, 0600", point, err)
				}
				sum, err = e.runner(t).Run(context.Background())
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum.OK != 99 || sum.Failed != 1 {
				t.Fatalf("summary %+v, want 99 ok and 1 failed", sum)
			}
			rs := readResults(t, e.opts.Out, 100)
			if r := rs[7]; r.Reply == nil || *r.Reply != "redriven q7" || r.Error != nil {
				t.Fatalf("record 7: %+v", r)
			}
			if r := rs[17]; r.Error == nil || !strings.Contains(r.Error.Message, "then on demand") || r.Error.DLQID == 0 {
				t.Fatalf("record 17: %+v", r.Error)
			}
			for q, n := range sender.calls {
				if n != 1 && q != "q17" {
					t.Errorf("%s sent %d times on demand, want once", q, n)
				}
			}
			parked, _ := e.dlq.List(context.Background(), dlq.Filter{})
			if len(parked) != 1 || !strings.Contains(parked[0].Message, "ValidationException") {
				t.Fatalf("%d parked (%v), want only record 17", len(parked), parked)
			}
			if _, err := os.Stat(e.opts.Out + ".redrive"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("redrive file once the run is done: %v, want it removed", err)
			}
		})
	}
}

// TestRedriveFileOfAnotherRun (review r5, finding 1): the replies an
// earlier run's redrive saved in OUT.redrive answer none of a later run's
// records, though it writes the same --out and its record ids repeat.
func TestRedriveFileOfAnotherRun(t *testing.T) {
	tests := []struct {
		name string
		next func(t *testing.T, o *Options) // the second run's options
	}{
		{"new input, same record ids", func(t *testing.T, o *Options) {
			var b strings.Builder
			for i := range 100 {
				fmt.Fprintf(&b, `{"recordId": "R%04d", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16, "messages": [{"role": "user", "content": "NEW%d"}]}}`+"\n", i, i)
			}
			o.In = filepath.Join(t.TempDir(), "in2.jsonl")
			if err := os.WriteFile(o.In, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"same input, another --s3 prefix", func(t *testing.T, o *Options) { o.S3 = testS3 + "-again" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.recordErr = func(id string) bool { return strings.HasSuffix(id, "7") }
			e.opts.Redrive = &fakeSender{fail: map[string]bool{}, calls: map[string]int{}}
			e.killAt("written") // the redrive file outlives this run
			e.runner(t).Run(context.Background())
			e.opts.crash, e.opts.Redrive = nil, nil
			e.opts.State = filepath.Join(t.TempDir(), "second.jobstate")
			tt.next(t, &e.opts)
			sum, err := e.runner(t).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sum.JobID == "job0001" || sum.OK != 90 || sum.Failed != 10 {
				t.Fatalf("second run: %+v, want a new job with 10 records failed", sum)
			}
			if r := readResults(t, e.opts.Out, 100)[7]; r.Error == nil || r.Reply != nil {
				t.Fatalf("record 7 of the second run: reply %v, error %+v; want the new job's error", r.Reply, r.Error)
			}
			if parked, _ := e.dlq.List(context.Background(), dlq.Filter{}); len(parked) != 10 {
				t.Fatalf("%d dead letters, want the second job's 10", len(parked))
			}
			if _, err := os.Stat(e.opts.Out + ".redrive"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("redrive file after the run is done: %v, want it removed", err)
			}
		})
	}
}
