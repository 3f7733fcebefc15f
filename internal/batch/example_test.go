package batch_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/batch"
	"github.com/keel-run/keel/internal/engine"
)

// echo stands for keel's engine: it answers every Converse call with a
// fixed reply.
type echo struct{}

func (echo) Do(ctx context.Context, call *engine.Call) (*http.Response, *engine.Report, error) {
	body := `{"output":{"message":{"role":"assistant","content":[{"text":"Aye."}]}},"stopReason":"end_turn","usage":{"inputTokens":9,"outputTokens":2,"totalTokens":11}}`
	t := attempt.Target{Model: call.Model, Region: "us-east-1"}
	rep := &engine.Report{Target: t, Attempts: []engine.Attempt{{Target: t, Status: 200}}}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}, rep, nil
}

func ExampleRun() {
	dir, _ := os.MkdirTemp("", "batch")
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "prompts.jsonl")
	os.WriteFile(in, []byte(`{"id":"q1","prompt":"Why do ships have keels?"}`+"\n"), 0o644)

	opts := batch.Options{In: in, Out: filepath.Join(dir, "results.jsonl"), Model: "amazon.nova-lite-v1:0", Doer: echo{}}
	sum, err := batch.Run(context.Background(), opts) // k.Do of a *keel.Keel is the usual Doer
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum.Succeeded, sum.Failed, sum.InputTokens, sum.OutputTokens)
	out, _ := os.ReadFile(opts.Out)
	fmt.Print(string(out))

	// The same call again resumes from the state file: nothing left to send.
	sum, _ = batch.Run(context.Background(), opts)
	fmt.Println(sum.Resumed, sum.Sent)
	// Output:
	// 1 0 9 2
	// {"id":"q1","reply":"Aye.","stopReason":"end_turn","usage":{"inputTokens":9,"outputTokens":2,"totalTokens":11},"target":"amazon.nova-lite-v1:0@us-east-1","attempts":1}
	// true 0
}
