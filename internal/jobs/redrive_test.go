package jobs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
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
			if fi, err := os.Stat(e.opts.Out + ".redrive"); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("redrive file: %v", err)
			}
		})
	}
}
