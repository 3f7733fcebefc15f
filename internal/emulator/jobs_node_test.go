package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/sigv4verify"
)

// requireNode returns the path of node, with test/js's node_modules holding
// pkgs. Without them the test skips, saying how to install them; with
// KEEL_REQUIRE_JS=1 (as .ci/run sets) it fails instead.
func requireNode(t *testing.T, pkgs ...string) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		msg := what + "; install with `npm ci --prefix test/js` (and Node.js 18 or later) to run this check"
		if os.Getenv("KEEL_REQUIRE_JS") == "1" {
			t.Fatal(msg + " (KEEL_REQUIRE_JS=1 requires it)")
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(jsDir, "node_modules", p, "package.json")); err != nil {
			missing("test/js/node_modules has no " + p)
		}
	}
	return node
}

// verifyAll returns a Verify hook that checks every request's SigV4
// signature with the test key pair, for the service SigningName names, as
// keel emulate does with --keys.
func verifyAll() func(r *http.Request, body []byte) *Rejection {
	keys := map[string]string{"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	byService := map[string]*sigv4verify.Verifier{}
	for _, s := range []string{SigningBedrock, SigningS3, SigningSTS, SigningServiceQuotas} {
		byService[s] = sigv4verify.New(sigv4verify.Options{Keys: keys, Service: s})
	}
	return func(r *http.Request, body []byte) *Rejection {
		return (*Rejection)(byService[SigningName(r)].Verify(r, body))
	}
}

// TestJobsJSSDK runs test/js/jobs.mjs: the AWS SDK for JavaScript v3's
// @aws-sdk/client-s3 (forcePathStyle) and @aws-sdk/client-bedrock, their
// signatures checked, through a batch inference job against the emulator:
// put the input, create (twice with one token), poll to Completed, list
// with filters, read the output and manifest, and stop a second job.
func TestJobsJSSDK(t *testing.T) {
	node := requireNode(t, "@aws-sdk/client-s3", "@aws-sdk/client-bedrock")
	const (
		records = 6
		// doneStep moves the finished job along fast; stopStep keeps the
		// stopped one from ending before the stop (four steps) on any
		// machine, and is then how long it stays Stopping.
		doneStep, stopStep = 20 * time.Millisecond, 2 * time.Second
	)
	rn := start(t, Options{Seed: testSeed, Verify: verifyAll(), JobPlanner: func(r fault.JobRequest) fault.Job {
		step := doneStep
		if r.Name == "js-stop" {
			step = stopStep
		}
		return fault.Job{Step: step, Limits: fault.JobLimits{MinRecordsPerJob: records}}
	}})

	ctx, cancel := context.WithTimeout(context.Background(), jsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "jobs.mjs", rn.URL, "js-jobs", haiku3, strconv.Itoa(records))
	cmd.Dir = jsDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node jobs.mjs: %v\nstderr: %s\nstdout: %s", err, stderr.String(), stdout.String())
	}
	steps := map[string]json.RawMessage{}
	var ops []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var op struct{ Op string }
		if err := json.Unmarshal([]byte(l), &op); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		ops = append(ops, op.Op)
		steps[op.Op] = json.RawMessage(l)
	}
	if got, want := strings.Join(ops, ","), "put,create,wait,list,list-output,output,manifest,stop"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	read := func(op string, v any) {
		t.Helper()
		if err := json.Unmarshal(steps[op], v); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
	}

	var created struct {
		JobArn         string
		SameArnOnRetry bool
	}
	read("create", &created)
	if !created.SameArnOnRetry {
		t.Errorf("a second create with the same clientRequestToken made another job")
	}
	jobID := created.JobArn[strings.LastIndex(created.JobArn, "/")+1:]

	var waited struct {
		Status                            string
		Seen                              []string
		Total, Processed, Success, Errors int
		SubmitTime                        bool
	}
	read("wait", &waited)
	if waited.Status != JobCompleted || waited.Total != records || waited.Processed != records || waited.Success != records || waited.Errors != 0 {
		t.Errorf("job ended %+v, want Completed with %d of %d records answered", waited, records, records)
	}
	if !slices.IsSorted(statusRanks(t, waited.Seen)) {
		t.Errorf("statuses seen %v are out of Bedrock's order", waited.Seen)
	}
	if !waited.SubmitTime {
		t.Errorf("submitTime did not parse as a Date")
	}

	var listed struct {
		Jobs []struct{ Arn, Name, Status string }
	}
	read("list", &listed)
	if len(listed.Jobs) != 1 || listed.Jobs[0].Arn != created.JobArn || listed.Jobs[0].Name != "js-done" {
		t.Errorf("ListModelInvocationJobs nameContains js- statusEquals Completed = %+v, want just %s", listed.Jobs, created.JobArn)
	}

	var objs struct{ Keys []string }
	read("list-output", &objs)
	want := []string{"output/" + jobID + "/manifest.json.out", "output/" + jobID + "/part 1.jsonl.out"}
	if !slices.Equal(objs.Keys, want) {
		t.Errorf("output objects %q, want %q", objs.Keys, want)
	}
	var out struct {
		RecordIDs  []string
		WithOutput int
	}
	read("output", &out)
	slices.Sort(out.RecordIDs)
	if len(out.RecordIDs) != records || out.RecordIDs[0] != "js000" || out.RecordIDs[records-1] != "js005" || out.WithOutput != records {
		t.Errorf("output lines %+v, want js000..js005, each with a modelOutput", out)
	}
	var manifest struct {
		TotalRecordCount, SuccessRecordCount, ErrorRecordCount, InputTokenCount, OutputTokenCount int
	}
	read("manifest", &manifest)
	if manifest.TotalRecordCount != records || manifest.SuccessRecordCount != records || manifest.ErrorRecordCount != 0 ||
		manifest.InputTokenCount == 0 || manifest.OutputTokenCount == 0 {
		t.Errorf("manifest %+v, want %d records all answered, with tokens", manifest, records)
	}

	var stopped struct {
		JobArn string
		Status string
		Seen   []string
	}
	read("stop", &stopped)
	if stopped.Status != JobStopped || stopped.JobArn == created.JobArn || !slices.Contains(stopped.Seen, JobStopping) {
		t.Errorf("stopped job %+v, want a second job that went Stopping then Stopped", stopped)
	}
}

// statusRanks maps job statuses to their place in Bedrock's order.
func statusRanks(t *testing.T, seen []string) []int {
	t.Helper()
	order := []string{JobSubmitted, JobValidating, JobScheduled, JobInProgress, JobCompleted}
	var r []int
	for _, s := range seen {
		i := slices.Index(order, s)
		if i < 0 {
			t.Errorf("status %q is not one a completed job passes", s)
		}
		r = append(r, i)
	}
	return r
}
