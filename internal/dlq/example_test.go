package dlq_test

import (
	"context"
	"fmt"
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
