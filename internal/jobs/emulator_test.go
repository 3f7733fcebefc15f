package jobs

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/clock"
	"github.com/keel-run/keel/internal/dlq"
	"github.com/keel-run/keel/internal/emulator"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/engine"
)

// emulatorStep is how long the emulator's jobs stay in each status: short,
// so a job ends in a fraction of a second; the flow polls until it has,
// whatever the machine's speed.
const emulatorStep = 20 * time.Millisecond

// emulatorPolling polls the emulator's fast jobs often.
var emulatorPolling = Polling{First: 5 * time.Millisecond, MaxInterval: 40 * time.Millisecond, PerHour: 1_000_000}

// startJobsEmulator serves the emulator on 127.0.0.1 with job plans from
// plan (nil: defaults at emulatorStep) and returns an env whose S3 and
// Bedrock clients are aws-sdk-go-v2's, pointed at it (S3 path-style).
func startJobsEmulator(t *testing.T, records int, plan func(fault.JobRequest) fault.Job) *env {
	t.Helper()
	if plan == nil {
		plan = func(fault.JobRequest) fault.Job { return fault.Job{Step: emulatorStep} }
	}
	rn, err := emulator.Start(emulator.Options{Seed: 3, JobPlanner: plan})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close() })
	creds := credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")
	sc := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL), UsePathStyle: true, Credentials: creds})
	bc := bedrock.New(bedrock.Options{Region: "us-east-1", BaseEndpoint: aws.String(rn.URL), Credentials: creds})
	e := newEnv(t, records)
	e.opts.S3Client, e.opts.Bedrock, e.opts.Region = sc, bc, "us-east-1"
	e.opts.Clock, e.opts.Rand, e.opts.Polling = clock.Real{}, nil, emulatorPolling
	e.opts.Limits = Limits{RecordsPerFile: 60}
	u, _ := url.Parse(rn.URL)
	e.endpoint = u
	return e
}

func TestEmulatorCompleted(t *testing.T) {
	e := startJobsEmulator(t, 150, nil)
	sum, err := e.runner(t).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Status != "Completed" || sum.OK != 150 || sum.Failed != 0 || sum.Manifest == nil || sum.Manifest.SuccessRecordCount != 150 ||
		sum.Manifest.InputTokenCount == 0 {
		t.Fatalf("summary %+v manifest %+v", sum, sum.Manifest)
	}
	rs := readResults(t, e.opts.Out, 150)
	if rs[0].Reply == nil || *rs[0].Reply == "" || rs[0].Attempts != 1 {
		t.Fatalf("record 0: %+v", rs[0])
	}
	if n := len(e.runner(t).St.Files); n != 3 {
		t.Fatalf("%d files, want 3 (150 records, 60 a file)", n)
	}
}

func TestEmulatorKillPoints(t *testing.T) {
	for _, point := range []string{"uploaded-1", "created-unrecorded", "created", "polled", "ended", "parked", "written"} {
		t.Run(point, func(t *testing.T) {
			e := startJobsEmulator(t, 120, func(fault.JobRequest) fault.Job { return fault.Job{Step: emulatorStep, RecordErrors: 0.1} })
			killed := e.killAt(point)
			if _, err := e.runner(t).Run(context.Background()); err == nil || !killed() {
				t.Fatalf("not killed at %s: %v", point, err)
			}
			sum, err := e.runner(t).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			out, err := e.opts.Bedrock.ListModelInvocationJobs(context.Background(), &bedrock.ListModelInvocationJobsInput{})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(out.InvocationJobSummaries); n != 1 {
				t.Fatalf("%d jobs in the emulator, want 1", n)
			}
			readResults(t, e.opts.Out, 120)
			parked, _ := e.dlq.List(context.Background(), dlq.Filter{})
			if sum.OK+sum.Failed != 120 || len(parked) != sum.Failed || sum.Failed == 0 {
				t.Fatalf("summary %+v, %d parked", sum, len(parked))
			}
		})
	}
}

// TestEmulatorPartiallyCompletedRedrive: the records a job did not answer
// go to the DLQ and, on demand, through the engine to the same emulator:
// record errors of a Completed job, and the records a PartiallyCompleted
// job (cut by its timeout) left unprocessed.
func TestEmulatorPartiallyCompletedRedrive(t *testing.T) {
	tests := []struct {
		name   string
		plan   fault.Job
		status string
		errors bool // the manifest counts record errors
		all    bool // the manifest counts every record processed
	}{
		{"Completed with record errors", fault.Job{Step: emulatorStep, RecordErrors: 0.2}, "Completed", true, true},
		{"PartiallyCompleted by its timeout", fault.Job{Step: emulatorStep, Partial: true}, "PartiallyCompleted", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startJobsEmulator(t, 100, func(fault.JobRequest) fault.Job { return tt.plan })
			eng, err := engine.New(engine.Options{Endpoints: attempt.FixedEndpoint{URL: e.endpoint}, DisableBudget: true, DisableBreaker: true})
			if err != nil {
				t.Fatal(err)
			}
			e.opts.Redrive = eng
			sum, err := e.runner(t).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			m := sum.Manifest
			if sum.Status != tt.status || (m.ErrorRecordCount > 0) != tt.errors || (m.ProcessedRecordCount == 100) != tt.all {
				t.Fatalf("summary %+v, manifest %+v", sum, m)
			}
			if sum.OK != 100 {
				t.Fatalf("%d of 100 answered after the redrive on demand", sum.OK)
			}
			if parked, _ := e.dlq.List(context.Background(), dlq.Filter{}); len(parked) != 0 {
				t.Fatalf("%d left parked", len(parked))
			}
		})
	}
}

// TestEmulatorExpired: a job that expired before it began wrote no output;
// every record is parked as not processed.
func TestEmulatorExpired(t *testing.T) {
	e := startJobsEmulator(t, 100, func(fault.JobRequest) fault.Job { return fault.Job{Step: emulatorStep, Expire: true} })
	sum, err := e.runner(t).Run(context.Background())
	var je *JobError
	if !errors.As(err, &je) || je.Status != "Expired" || !strings.Contains(err.Error(), "did not begin within its timeout") {
		t.Fatalf("err = %v, want the job Expired with Bedrock's message", err)
	}
	if sum == nil || sum.OK != 0 || sum.Failed != 100 || sum.Manifest != nil {
		t.Fatalf("summary %+v, want 100 failed and no manifest", sum)
	}
	if parked, _ := e.dlq.List(context.Background(), dlq.Filter{}); len(parked) != 100 {
		t.Fatalf("%d parked, want 100", len(parked))
	}
}

func TestEmulatorFailed(t *testing.T) {
	e := startJobsEmulator(t, 100, func(fault.JobRequest) fault.Job {
		return fault.Job{Step: emulatorStep, FailValidation: "the role cannot read the input"}
	})
	sum, err := e.runner(t).Run(context.Background())
	var je *JobError
	if !errors.As(err, &je) || je.Status != "Failed" || !strings.Contains(err.Error(), "the role cannot read the input") {
		t.Fatalf("err = %v", err)
	}
	if sum.Failed != 100 {
		t.Fatalf("summary %+v", sum)
	}
	readResults(t, e.opts.Out, 100)
}

func TestEmulatorStop(t *testing.T) {
	e := startJobsEmulator(t, 100, func(fault.JobRequest) fault.Job { return fault.Job{Step: time.Second} }) // Stop comes long before the job would end
	r := e.runner(t)
	if err := r.Submit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(context.Background())
	var je *JobError
	if !errors.As(err, &je) || je.Status != "Stopped" {
		t.Fatalf("err = %v, want Stopped", err)
	}
	readResults(t, e.opts.Out, 100)
}

func TestEmulatorThrottledCreate(t *testing.T) {
	var creates atomic.Int32
	e := startJobsEmulator(t, 100, func(fault.JobRequest) fault.Job {
		if creates.Add(1) <= 2 {
			return fault.Job{Step: emulatorStep, CreateError: "ThrottlingException"}
		}
		return fault.Job{Step: emulatorStep}
	})
	if _, err := e.runner(t).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}
