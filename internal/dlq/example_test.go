package dlq_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/engine"
)

// A call that failed because its AWS Marketplace subscription is still being
// set up is parked with a not-before time 15 minutes on.
func ExampleRecorder() {
	now := time.Date(2026, 5, 1, 9, 30, 0, 0, time.UTC)
	store := dlq.NewMemory() // dlq.OpenSQLite("keel-dlq.db") in production
	rec := &dlq.Recorder{Store: store, Clock: clock.NewFake(now)}

	call := &engine.Call{Op: attempt.Converse, Model: "anthropic.claude-3-opus-20240229-v1:0", Body: []byte(`{"messages":[]}`)}
	entry := catalog.Must(catalog.CodeMPAgreementBeingCreated)
	err := &engine.Error{Entry: entry, Code: "AccessDeniedException", Status: 403, Message: entry.DefaultMessage}

	e, _ := rec.Record(context.Background(), call, err, "")
	fmt.Println(e.ID, e.Code, e.Status)
	fmt.Println("due now:", e.Due(now), "due at:", e.NotBefore.Format(time.Kitchen))
	// Output:
	// 1 MPAgreementBeingCreated 403
	// due now: false due at: 9:45AM
}

// answer stands for keel's engine in the example below: it answers every
// call with the same Converse reply.
type answer struct{}

func (answer) Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error) {
	body := `{"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},"stopReason":"end_turn"}`
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}, &engine.Report{}, nil
}

// A redrive sends each due entry again; a reply is saved before its entry is
// removed.
func ExampleRedrive() {
	ctx := context.Background()
	store := dlq.NewMemory()
	store.Put(ctx, &dlq.Entry{Op: "converse-stream", Model: "amazon.nova-lite-v1:0", Body: []byte(`{"messages":[]}`), Code: "ThrottlingException"})

	sum, err := dlq.Redrive(ctx, store, answer{}, dlq.RedriveOptions{ // k, a *keel.Keel, in production
		Save: func(r dlq.Result) error {
			fmt.Printf("entry %d (%s) answered: %s\n", r.Entry.ID, r.Op, r.Body)
			return nil // an error here keeps the entry
		},
	})
	fmt.Printf("%+v %v\n", sum, err)
	// Output:
	// entry 1 (converse) answered: {"output":{"message":{"role":"assistant","content":[{"text":"hello"}]}},"stopReason":"end_turn"}
	// {Selected:1 NotDue:0 Redacted:0 Succeeded:1 Failed:0 NotTried:0} <nil>
}
