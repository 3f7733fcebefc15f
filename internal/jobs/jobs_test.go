package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	btypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"

	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
)

const (
	testModel = "anthropic.claude-3-haiku-20240307-v1:0"
	testRole  = "arn:aws:iam::123456789012:role/keel-batch"
	testS3    = "s3://keel-test/runs"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// writeInput writes n Bedrock-format records and returns the path.
func writeInput(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"recordId": "R%04d", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16, "messages": [{"role": "user", "content": "q%d"}]}}`+"\n", i, i)
	}
	p := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type env struct {
	endpoint *url.URL // the emulator's, for an engine (emulator_test.go)
	fake     *fakeAWS
	dlq      *dlq.Memory
	opts     Options
	clock    *clock.Fake
}

func newEnv(t *testing.T, records int) *env {
	t.Helper()
	e := &env{fake: newFake(), dlq: dlq.NewMemory(), clock: clock.NewAuto(t0)}
	dir := t.TempDir()
	e.opts = Options{In: writeInput(t, records), Model: testModel, Out: filepath.Join(dir, "out.jsonl"), S3: testS3, Role: testRole,
		S3Client: e.fake, Bedrock: e.fake, DLQ: e.dlq, Clock: e.clock, Rand: func() float64 { return 0.5 },
		Limits: Limits{RecordsPerFile: 40}}
	return e
}

// killAt sets the env's kill seam to end the run at point, once; killed
// reports whether it did. A point of "" kills nothing.
func (e *env) killAt(point string) (killed func() bool) {
	done := false
	e.opts.crash = func(p string) error {
		if p == point && !done {
			done = true
			return errors.New("killed at " + p)
		}
		return nil
	}
	return func() bool { return done }
}

func (e *env) runner(t *testing.T) *Runner {
	t.Helper()
	r, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// result is the part of a result line the tests read.
type result struct {
	RecordID string `json:"recordId"`
	Reply    *string
	Attempts int
	Error    *struct {
		Code    string
		Status  int
		Message string
		DLQID   int64
	}
}

// readResults reads the results file and checks it holds each of n records
// once, in input order.
func readResults(t *testing.T, path string, n int) []result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rs []result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", len(rs)+1, err)
		}
		if want := fmt.Sprintf("R%04d", len(rs)); r.RecordID != want {
			t.Fatalf("line %d is record %q, want %q (one line per record, in input order)", len(rs)+1, r.RecordID, want)
		}
		rs = append(rs, r)
	}
	if len(rs) != n {
		t.Fatalf("%d result lines, want %d", len(rs), n)
	}
	return rs
}

func TestRunCompleted(t *testing.T) {
	e := newEnv(t, 100)
	sum, err := e.runner(t).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK != 100 || sum.Failed != 0 || sum.Status != "Completed" || sum.Manifest == nil || sum.Manifest.InputTokenCount != 1000 {
		t.Fatalf("summary %+v, manifest %+v", sum, sum.Manifest)
	}
	rs := readResults(t, e.opts.Out, 100)
	if rs[7].Reply == nil || *rs[7].Reply != "answer "+wireID(7) || rs[7].Attempts != 1 {
		t.Fatalf("record 7: %+v", rs[7])
	}
	if e.fake.creates != 1 {
		t.Fatalf("%d jobs created, want 1", e.fake.creates)
	}
	// 100 records, 40 a file: three files.
	if n := len(e.runner(t).St.Files); n != 3 {
		t.Fatalf("%d files, want 3", n)
	}
	for _, p := range []string{e.opts.Out, e.opts.Out + ".jobstate"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", p, err, fi.Mode())
		}
	}
	// Running again once done changes nothing and creates nothing.
	if _, err := e.runner(t).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.fake.creates != 1 {
		t.Fatalf("%d jobs created after a second run, want 1", e.fake.creates)
	}
}

// TestKillPoints kills the run at every step (the test seam returns an
// error there, as a kill would end the process) and runs it again: one job
// in all, every record in the results once, the failed ones parked once.
func TestKillPoints(t *testing.T) {
	points := []string{"validated", "uploaded-unrecorded", "uploaded-1", "uploaded-2", "uploaded",
		"created-unrecorded", "created", "polled", "ended", "parked", "written"}
	for _, point := range points {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.recordErr = func(id string) bool { return strings.HasSuffix(id, "7") }
			e.fake.pollsToEnd = 3
			killed := e.killAt(point)
			_, err := e.runner(t).Run(context.Background())
			if err == nil || !killed() {
				t.Fatalf("the run was not killed at %s: %v", point, err)
			}
			sum, err := e.runner(t).Run(context.Background())
			if err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if e.fake.creates != 1 {
				t.Fatalf("%d jobs created, want 1", e.fake.creates)
			}
			rs := readResults(t, e.opts.Out, 100)
			if sum.OK != 90 || sum.Failed != 10 || sum.Status != "PartiallyCompleted" {
				t.Fatalf("summary %+v", sum)
			}
			parked, _ := e.dlq.List(context.Background(), dlq.Filter{})
			if len(parked) != 10 {
				t.Fatalf("%d records parked, want 10", len(parked))
			}
			for _, r := range rs {
				if r.Error != nil && r.Error.DLQID == 0 {
					t.Fatalf("record %s failed but names no dead letter", r.RecordID)
				}
			}
		})
	}
}

func TestPartiallyCompleted(t *testing.T) {
	e := newEnv(t, 120)
	e.fake.recordErr = func(id string) bool { return id == wireID(3) || id == wireID(100) }
	sum, err := e.runner(t).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status != "PartiallyCompleted" || sum.OK != 118 || sum.Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
	rs := readResults(t, e.opts.Out, 120)
	r := rs[3]
	if r.Error == nil || r.Error.Code != CodeRecordError || r.Error.Status != 400 || !strings.Contains(r.Error.Message, "job0001") ||
		!strings.Contains(r.Error.Message, "Malformed input request") {
		t.Fatalf("record 3: %+v", r.Error)
	}
	ent, err := e.dlq.Get(context.Background(), r.Error.DLQID)
	if err != nil {
		t.Fatal(err)
	}
	if ent.Op != "invoke" || ent.Model != testModel || ent.Source != "jobs" || !strings.Contains(string(ent.Body), `"q3"`) ||
		!strings.Contains(ent.Message, "job0001") {
		t.Fatalf("dead letter %+v", ent)
	}
}

func TestFailedJob(t *testing.T) {
	e := newEnv(t, 100)
	e.fake.end = btypes.ModelInvocationJobStatusFailed
	sum, err := e.runner(t).Run(context.Background())
	var je *JobError
	if !errors.As(err, &je) || je.Status != "Failed" || !strings.Contains(err.Error(), "failed validation") {
		t.Fatalf("err = %v, want a *JobError naming Bedrock's message", err)
	}
	if sum == nil || sum.Failed != 100 {
		t.Fatalf("summary %+v", sum)
	}
	rs := readResults(t, e.opts.Out, 100)
	if rs[0].Error == nil || rs[0].Error.Code != CodeNotProcessed || rs[0].Attempts != 0 {
		t.Fatalf("record 0: %+v", rs[0])
	}
	if parked, _ := e.dlq.List(context.Background(), dlq.Filter{}); len(parked) != 100 {
		t.Fatalf("%d parked, want 100", len(parked))
	}
	st, _ := LoadState(e.opts.Out + ".jobstate")
	if st.Step != StepDone || st.Status != "Failed" {
		t.Fatalf("state says %s/%s", st.Step, st.Status)
	}
}

func TestStop(t *testing.T) {
	e := newEnv(t, 100)
	e.fake.pollsToEnd = 1000
	var r *Runner
	stopped := false
	e.opts.Progress = func(st *State) {
		if st.Status == "InProgress" && !stopped {
			stopped = true
			if err := r.Stop(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}
	r = e.runner(t)
	sum, err := r.Run(context.Background())
	var je *JobError
	if !errors.As(err, &je) || je.Status != "Stopped" {
		t.Fatalf("err = %v, want the job Stopped", err)
	}
	// Three files of 40, 40 and 20: the fake did half of each.
	if sum.OK != 50 || sum.Failed != 50 {
		t.Fatalf("summary %+v", sum)
	}
	rs := readResults(t, e.opts.Out, 100)
	if rs[0].Error != nil || rs[39].Error == nil || rs[39].Error.Code != CodeNotProcessed {
		t.Fatalf("records 0 and 39: %+v %+v", rs[0].Error, rs[39].Error)
	}
}

func TestThrottledCreateAndPoll(t *testing.T) {
	// rand is 0.5: each wait is half the interval. After a throttle the
	// interval is ×3; polls: throttled three times (1s, 3s, 9s), then a
	// quiet one (×1.5, capped at 8s), then the job has ended.
	polls := []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 4500 * time.Millisecond, 4 * time.Second}
	tests := []struct {
		name      string
		list, put int // throttled ListModelInvocationJobs and CreateModelInvocationJob calls
		want      []time.Duration
	}{
		{"create throttled twice", 0, 2, append([]time.Duration{500 * time.Millisecond, 1500 * time.Millisecond}, polls...)},
		{"the look for an earlier job throttled twice", 2, 0, append([]time.Duration{500 * time.Millisecond, 1500 * time.Millisecond}, polls...)},
		{"both", 1, 1, append([]time.Duration{500 * time.Millisecond, 500 * time.Millisecond}, polls...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.throttleList, e.fake.throttlePut, e.fake.throttleGet = tt.list, tt.put, 3
			e.opts.Polling = Polling{First: time.Second, MaxInterval: 8 * time.Second}
			var told []string
			e.opts.Retrying = func(what string, _ error, _ time.Duration) { told = append(told, what) }
			if _, err := e.runner(t).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if e.fake.creates != 1 {
				t.Fatalf("%d jobs", e.fake.creates)
			}
			if got := e.clock.Waits(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("waits %v, want %v", got, tt.want)
			}
			if len(told) != tt.list+tt.put+3 {
				t.Fatalf("Retrying told of %d failed calls (%q), want %d", len(told), told, tt.list+tt.put+3)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	big := func(t *testing.T) string {
		p := writeInput(t, 100)
		f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintf(f, `{"recordId": "huge", "modelInput": {"x": %q}}`+"\n", strings.Repeat("a", 2000))
		f.Close()
		return p
	}
	mixed := func(t *testing.T) string {
		p := writeInput(t, 100)
		f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprintln(f, `{"id": 1, "prompt": "hi"}`)
		f.Close()
		return p
	}
	tests := []struct {
		name string
		set  func(t *testing.T, o *Options)
		want string
	}{
		{"too few records", func(t *testing.T, o *Options) { o.In = writeInput(t, 99) }, "has 99 records; a Bedrock batch job needs at least 100"},
		{"record over the file size", func(t *testing.T, o *Options) { o.In = big(t); o.Limits.BytesPerFile = 1000 }, `record "huge" (line 101) is`},
		{"bad S3 URI", func(t *testing.T, o *Options) { o.S3 = "https://bucket/x" }, `"https://bucket/x" is not an S3 URI`},
		{"bad bucket", func(t *testing.T, o *Options) { o.S3 = "s3://B_ad/x" }, `"B_ad" is not an S3 bucket name`},
		{"missing role", func(t *testing.T, o *Options) { o.Role = "" }, "no service role"},
		{"bad role", func(t *testing.T, o *Options) { o.Role = "arn:aws:iam::12:user/x" }, "is not an IAM role ARN"},
		{"no model", func(t *testing.T, o *Options) { o.Model = "" }, "no model (--model)"},
		{"mixed formats", func(t *testing.T, o *Options) { o.In = mixed(t) }, "mixes Bedrock-format and simple records"},
		{"too many records", func(t *testing.T, o *Options) { o.Limits.RecordsPerJob = 50 }, "one job holds at most 50"},
		{"timeout under 24 hours", func(t *testing.T, o *Options) { o.TimeoutHours = 1 }, "a job's timeout is 24 to 168 hours, not 1"},
		{"timeout over 168 hours", func(t *testing.T, o *Options) { o.TimeoutHours = 169 }, "a job's timeout is 24 to 168 hours, not 169"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			tt.set(t, &e.opts)
			_, err := e.runner(t).Run(context.Background())
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.want)
			}
			if len(e.fake.objects) != 0 || e.fake.creates != 0 {
				t.Fatalf("bad input reached AWS: %d objects, %d jobs", len(e.fake.objects), e.fake.creates)
			}
		})
	}
}

func TestResumeRefusesAnotherRun(t *testing.T) {
	e := newEnv(t, 100)
	e.killAt("created")
	e.runner(t).Run(context.Background())
	e.opts.Model = "amazon.nova-lite-v1:0"
	if _, err := e.runner(t).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "is the run with --model") {
		t.Fatalf("err = %v", err)
	}
	// The input changed under a run that has not uploaded yet is refused too.
	e2 := newEnv(t, 100)
	e2.killAt("validated")
	e2.runner(t).Run(context.Background())
	os.WriteFile(e2.opts.In, []byte(strings.Repeat(`{"recordId": "x", "modelInput": {}}`+"\n", 1)), 0o600)
	if _, err := e2.runner(t).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "changed since the run began") {
		t.Fatalf("err = %v", err)
	}
}

// TestCreatedJobFoundByName: a kill between create and checkpoint, after
// Bedrock has forgotten the clientRequestToken, still finds the job (by its
// name, derived from the run) instead of creating a second.
func TestCreatedJobFoundByName(t *testing.T) {
	e := newEnv(t, 100)
	e.killAt("created-unrecorded")
	e.runner(t).Run(context.Background())
	clear(e.fake.tokens)
	if _, err := e.runner(t).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.fake.creates != 1 {
		t.Fatalf("%d jobs created, want 1", e.fake.creates)
	}
}

func TestExpiredJob(t *testing.T) {
	e := newEnv(t, 100)
	e.fake.end = btypes.ModelInvocationJobStatusExpired
	sum, err := e.runner(t).Run(context.Background())
	var je *JobError
	if !errors.As(err, &je) || je.Status != "Expired" {
		t.Fatalf("err = %v, want the job Expired", err)
	}
	if sum.OK != 50 || sum.Failed != 50 {
		t.Fatalf("summary %+v", sum)
	}
	if parked, _ := e.dlq.List(context.Background(), dlq.Filter{}); len(parked) != 50 {
		t.Fatalf("%d parked, want 50", len(parked))
	}
}

// TestDoneRunChangesNothing (review r5, finding 2): once a run is done,
// running it again (or its results step) returns the recorded summary and
// brings back none of the dead letters keel dlq redrive answered since.
func TestDoneRunChangesNothing(t *testing.T) {
	tests := []struct {
		name string
		step func(r *Runner) (*Summary, error)
	}{
		{"run", func(r *Runner) (*Summary, error) { return r.Run(context.Background()) }},
		{"results", func(r *Runner) (*Summary, error) { return r.Results(context.Background()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.recordErr = func(id string) bool { return strings.HasSuffix(id, "7") }
			first, err := e.runner(t).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			parked, _ := e.dlq.List(ctx, dlq.Filter{})
			for _, p := range parked { // what keel dlq redrive does with those it answered
				e.dlq.Delete(ctx, p.ID)
			}
			out, _ := os.ReadFile(e.opts.Out)
			gets := e.fake.gets
			sum, err := tt.step(e.runner(t))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sum, first) {
				t.Fatalf("summary %+v, want the recorded %+v", sum, first)
			}
			if parked, _ := e.dlq.List(ctx, dlq.Filter{}); len(parked) != 0 {
				t.Fatalf("%d dead letters came back", len(parked))
			}
			if again, _ := os.ReadFile(e.opts.Out); string(again) != string(out) || e.fake.gets != gets {
				t.Fatalf("the results file changed, or Bedrock was asked again (%d polls, was %d)", e.fake.gets, gets)
			}
			os.Remove(e.opts.Out)
			if _, err := tt.step(e.runner(t)); err == nil || !strings.Contains(err.Error(), "is done, but its results file") {
				t.Fatalf("results file gone: err = %v", err)
			}
		})
	}
}

// TestRegionRecorded (review r5, finding 3): the state file records the
// run's region; a later step in another region is refused, and the dead
// letters name the run's region even when a step is given none.
func TestRegionRecorded(t *testing.T) {
	tests := []struct {
		name   string
		region string // the later step's Options.Region
		want   string // in the error; "" for none
	}{
		{"another region", "us-east-1", "is a run in region us-west-2, not us-east-1"},
		{"the same region", "us-west-2", ""},
		{"no region given", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.recordErr = func(id string) bool { return strings.HasSuffix(id, "7") }
			e.opts.Region = "us-west-2"
			if err := e.runner(t).Submit(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.opts.Region = tt.region
			r, err := New(e.opts)
			if tt.want != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			parked, _ := e.dlq.List(context.Background(), dlq.Filter{})
			if len(parked) != 10 || parked[0].Region != "us-west-2" {
				t.Fatalf("%d dead letters, the first in region %q; want 10 in us-west-2", len(parked), parked[0].Region)
			}
		})
	}
}

// TestNewJob (review r5, finding 7): a run whose job ended Failed says how
// to get a new job, and Options.NewJob (--new) submits the input again as
// the run's next attempt: one new job, however often it is run or killed,
// and the old job's dead letters go.
func TestNewJob(t *testing.T) {
	tests := []struct {
		name      string
		end       btypes.ModelInvocationJobStatus // the first job's end
		freshSate bool                            // the second run has a new state file (the old one removed)
		newJob    bool
		kill      string // a kill point in the second run, which is then run again
		want      string // in the second run's error; "" for none
		creates   int
		redrive   bool // the first run redrives its failures on demand, answering every record
	}{
		{"Failed, state removed, run again", btypes.ModelInvocationJobStatusFailed, true, false, "", "has already ended Failed; to submit the input again as a new job, run again with --new", 1, false},
		{"Failed, state removed, --new", btypes.ModelInvocationJobStatusFailed, true, true, "", "", 2, false},
		{"Failed, same state, run again", btypes.ModelInvocationJobStatusFailed, false, false, "", "ended Failed", 1, false},
		{"Failed, same state, --new", btypes.ModelInvocationJobStatusFailed, false, true, "", "", 2, false},
		{"Failed, --new killed after the create", btypes.ModelInvocationJobStatusFailed, false, true, "created-unrecorded", "", 2, false},
		{"Stopped, same state, --new", btypes.ModelInvocationJobStatusStopped, false, true, "", "", 2, false},
		{"Completed, --new changes nothing", "", false, true, "", "", 1, false},
		{"Stopped, every record answered on demand, --new refused", btypes.ModelInvocationJobStatusStopped, false, true, "",
			"every record of this run is answered (100 ok", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.end = tt.end
			if tt.redrive {
				e.opts.Redrive = &fakeSender{fail: map[string]bool{}, calls: map[string]int{}}
			}
			e.runner(t).Run(context.Background())
			e.opts.Redrive = nil
			e.fake.end = "" // the cause (the role, the bucket policy) is fixed
			if tt.freshSate {
				os.Remove(e.opts.Out + ".jobstate")
			}
			e.opts.NewJob = tt.newJob
			killed := e.killAt(tt.kill)
			sum, err := e.runner(t).Run(context.Background())
			if tt.kill != "" {
				if !killed() {
					t.Fatalf("not killed at %s: %v", tt.kill, err)
				}
				sum, err = e.runner(t).Run(context.Background())
			}
			if e.fake.creates != tt.creates {
				t.Fatalf("%d jobs created, want %d", e.fake.creates, tt.creates)
			}
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want it to say %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum.OK != 100 {
				t.Fatalf("summary %+v", sum)
			}
			if parked, _ := e.dlq.List(context.Background(), dlq.Filter{}); len(parked) != 0 {
				t.Fatalf("%d dead letters left (the first is %s), want the old job's removed", len(parked), parked[0].Key)
			}
		})
	}
}

// TestTimeoutHoursRecorded (review r5, finding 9): the job's timeout is
// part of the run: recorded when it begins, sent with the create on
// resume, and another value is refused.
func TestTimeoutHoursRecorded(t *testing.T) {
	tests := []struct {
		name   string
		resume int32 // Options.TimeoutHours when the run is resumed
		want   string
	}{
		{"resumed without it", 0, ""},
		{"resumed with it", 48, ""},
		{"resumed with another", 72, "is the run with --timeout-hours 48, not 72"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.opts.TimeoutHours = 48
			e.killAt("uploaded")
			e.runner(t).Run(context.Background())
			e.opts.TimeoutHours = tt.resume
			_, err := e.runner(t).Run(context.Background())
			if tt.want != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range e.fake.jobs {
				if got := j.in.TimeoutDurationInHours; got == nil || *got != 48 {
					t.Fatalf("the job was created with timeout %v, want 48", got)
				}
			}
		})
	}
}

// noARN answers the first n CreateModelInvocationJob calls that made or
// found a job without its jobArn.
type noARN struct {
	*fakeAWS
	n int
}

func (f *noARN) CreateModelInvocationJob(ctx context.Context, in *bedrock.CreateModelInvocationJobInput, o ...func(*bedrock.Options)) (*bedrock.CreateModelInvocationJobOutput, error) {
	out, err := f.fakeAWS.CreateModelInvocationJob(ctx, in, o...)
	if err == nil && f.n > 0 {
		f.n--
		out.JobArn = nil
	}
	return out, err
}

// TestCreateWithoutARN (review r5, finding 10): a create answered without
// a jobArn is asked again (the token makes it the same job), and a state
// that recorded such an answer as "created" goes back to create.
func TestCreateWithoutARN(t *testing.T) {
	tests := []struct {
		name  string
		n     int // creates answered without the ARN
		stale bool
		want  string // in the error; "" for a run that ends well
	}{
		{"once", 1, false, ""},
		{"every time", 1 << 30, false, "gave up after 20 tries: CreateModelInvocationJob answered without a jobArn"},
		{"a state recorded as created without a job", 0, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.opts.Bedrock = &noARN{fakeAWS: e.fake, n: tt.n}
			if tt.stale {
				e.killAt("uploaded")
				e.runner(t).Run(context.Background())
				st, _ := LoadState(e.opts.Out + ".jobstate")
				st.Step = StepCreated
				if err := st.save(e.opts.Out+".jobstate", t0); err != nil {
					t.Fatal(err)
				}
			}
			_, err := e.runner(t).Run(context.Background())
			if tt.want != "" {
				st, _ := LoadState(e.opts.Out + ".jobstate")
				if err == nil || !strings.Contains(err.Error(), tt.want) || st.Step != StepUploaded {
					t.Fatalf("err = %v, step %q; want %q, step uploaded", err, st.Step, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.fake.creates != 1 {
				t.Fatalf("%d jobs created, want 1", e.fake.creates)
			}
		})
	}
}

// TestRecordIDsOnTheWire (review r5, finding 12): whatever ids the input
// carries, the uploaded records carry keel's (11 alphanumerics, as
// Bedrock's guide asks), and the results are joined back to the input's.
func TestRecordIDsOnTheWire(t *testing.T) {
	wire := regexp.MustCompile(`^K[0-9]{10}$`)
	tests := []struct {
		name string
		line func(i int) string
		id   func(i int) string // the id in the result line
	}{
		{"ids with dashes, underscores and spaces", func(i int) string {
			return fmt.Sprintf(`{"recordId": "call-%d_x y", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16, "messages": [{"role": "user", "content": "q%d"}]}}`, i, i)
		}, func(i int) string { return fmt.Sprintf("call-%d_x y", i) }},
		{"long ids", func(i int) string {
			return fmt.Sprintf(`{"recordId": "%s%d", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16, "messages": [{"role": "user", "content": "q%d"}]}}`, strings.Repeat("x", 200), i, i)
		}, func(i int) string { return fmt.Sprint(strings.Repeat("x", 200), i) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			var b strings.Builder
			for i := range 100 {
				b.WriteString(tt.line(i) + "\n")
			}
			e.opts.In = filepath.Join(t.TempDir(), "in.jsonl")
			if err := os.WriteFile(e.opts.In, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			e.fake.recordErr = func(id string) bool { return id == wireID(7) }
			sum, err := e.runner(t).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sum.OK != 99 || sum.Failed != 1 {
				t.Fatalf("summary %+v", sum)
			}
			for k, obj := range e.fake.objects {
				if !strings.Contains(k, "/input/") {
					continue
				}
				for l := range strings.Lines(string(obj)) {
					var bl batchLine
					if err := json.Unmarshal([]byte(l), &bl); err != nil || !wire.MatchString(bl.RecordID) {
						t.Fatalf("%s: recordId %q (%v), want K and ten digits", k, bl.RecordID, err)
					}
				}
			}
			f, _ := os.ReadFile(e.opts.Out)
			i := 0
			for l := range strings.Lines(string(f)) {
				var r struct {
					RecordID string
					Error    *struct{ Code string }
				}
				json.Unmarshal([]byte(l), &r)
				if r.RecordID != tt.id(i) || (r.Error != nil) != (i == 7) {
					t.Fatalf("result line %d: %+v, want record %q, failed only at 7", i+1, r, tt.id(i))
				}
				i++
			}
		})
	}
}

// TestRedact (review r5, finding 13): with Redact the dead letters keep
// no prompt text, as keel batch run --redact; it cannot go with Redrive.
func TestRedact(t *testing.T) {
	tests := []struct {
		name    string
		redact  bool
		redrive bool
		want    string // in New's error; "" for none
		prompt  bool   // the dead letter holds the prompt
	}{
		{"redacted", true, false, "", false},
		{"not redacted", false, false, "", true},
		{"redacted and redriven", true, true, "cannot be redriven on demand", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.recordErr = func(id string) bool { return id == wireID(7) }
			e.opts.Redact = tt.redact
			if tt.redrive {
				e.opts.Redrive = &fakeSender{fail: map[string]bool{}, calls: map[string]int{}}
			}
			r, err := New(e.opts)
			if tt.want != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.want)
				}
				return
			}
			if _, err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			parked, _ := e.dlq.List(context.Background(), dlq.Filter{})
			if len(parked) != 1 || strings.Contains(string(parked[0].Body), `"q7"`) != tt.prompt || parked[0].Redacted != tt.redact {
				t.Fatalf("%d dead letters; body %s, redacted %v", len(parked), parked[0].Body, parked[0].Redacted)
			}
		})
	}
}

// TestStepsOneByOne runs the steps as keel jobs submit, results, stop,
// results and stop do, each with a new Runner on the state file: results
// asks Bedrock once when the state is behind it and refuses a job that has
// not ended, naming its status; stop saves nothing, shows the job Stopping,
// and is not sent to a job the state records as ended.
func TestStepsOneByOne(t *testing.T) {
	e := newEnv(t, 100)
	ctx := context.Background()
	state := func() *State {
		st, err := LoadState(e.opts.Out + ".jobstate")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if err := e.runner(t).Submit(ctx); err != nil {
		t.Fatalf("submit: %v", err)
	}

	_, err := e.runner(t).Results(ctx)
	if !errors.Is(err, ErrNotEnded) || !strings.Contains(err.Error(), "is InProgress (0/0 records processed); wait for it first") {
		t.Fatalf("results on a running job: %v, want ErrNotEnded naming InProgress", err)
	}
	if e.fake.gets != 1 {
		t.Fatalf("results on a running job asked Bedrock %d times, want once", e.fake.gets)
	}
	if _, err := os.Stat(e.opts.Out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("results wrote %s for a running job: %v", e.opts.Out, err)
	}

	before, err := os.ReadFile(e.opts.Out + ".jobstate")
	if err != nil {
		t.Fatal(err)
	}
	r := e.runner(t)
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if r.St.Status != "Stopping" {
		t.Fatalf("after stop: r.St.Status %q, want Stopping", r.St.Status)
	}
	if after, _ := os.ReadFile(e.opts.Out + ".jobstate"); string(after) != string(before) {
		t.Fatalf("stop changed the state file:\n%s\nwas\n%s", after, before)
	}

	sum, err := e.runner(t).Results(ctx) // the state says created; Bedrock says Stopped
	var je *JobError
	if !errors.As(err, &je) || je.Status != "Stopped" || sum == nil || sum.Records != 100 {
		t.Fatalf("results after stop: %+v, %v; want the Stopped job's 100 records", sum, err)
	}
	readResults(t, e.opts.Out, 100)
	if st := state(); st.Step != StepDone {
		t.Fatalf("after results: step %s, want done", st.Step)
	}

	stops := e.fake.stops
	err = e.runner(t).Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "already ended Stopped; there is nothing to stop") || e.fake.stops != stops {
		t.Fatalf("stop of an ended job: %v, %d stops sent; want refused, none sent", err, e.fake.stops-stops)
	}
}

// TestJobOfAnEarlierRun: a new state file for a run done before finds its
// job by name; a job that answered is adopted (no second job), one that
// ended Expired is refused, and --new then makes the run's second job.
func TestJobOfAnEarlierRun(t *testing.T) {
	tests := []struct {
		name    string
		end     btypes.ModelInvocationJobStatus
		errText string // "" for adopted
	}{
		{"completed: adopted", "", ""},
		{"expired: refused", btypes.ModelInvocationJobStatusExpired, "has already ended Expired; to submit the input again as a new job, run again with --new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 100)
			e.fake.end = tt.end
			e.runner(t).Run(context.Background())
			if err := os.Remove(e.opts.Out + ".jobstate"); err != nil {
				t.Fatal(err)
			}
			sum, err := e.runner(t).Run(context.Background())
			switch {
			case tt.errText == "" && (err != nil || sum.OK != 100):
				t.Fatalf("second run: %+v, %v; want the job's 100 answers", sum, err)
			case tt.errText != "" && (err == nil || !strings.Contains(err.Error(), tt.errText)):
				t.Fatalf("second run: %v, want %q", err, tt.errText)
			}
			if e.fake.creates != 1 {
				t.Fatalf("%d jobs created, want 1", e.fake.creates)
			}
			if tt.errText == "" {
				return
			}
			e.opts.NewJob, e.fake.end = true, ""
			if _, err := e.runner(t).Run(context.Background()); err != nil || e.fake.creates != 2 {
				t.Fatalf("with --new: %v, %d jobs; want a second job", err, e.fake.creates)
			}
		})
	}
}
